"""InfoNCE against hand-computed softmaxes, the L^Global / L^Train diagnostics, and a two-process
global-batch check under torchrun."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

from codesearch.diagnostics import batch_loss, global_loss
from codesearch.loss import false_negative_mask, gather_with_grad, info_nce

REPO = Path(__file__).resolve().parents[1]


def unit(rng: np.random.Generator, n: int, d: int = 8) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ce_rows(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[target] per row, by hand (masked entries are -inf)."""
    top = logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    return lse - logits[np.arange(len(targets)), targets]


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return unit(rng, 5), unit(rng, 5), unit(rng, 3)


def t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x)


def test_info_nce_matches_hand_softmax(batch):
    q, c, _ = batch
    expected = ce_rows(20.0 * q @ c.T, np.arange(5)).mean()
    assert info_nce(t(q), t(c), scale=20.0).item() == pytest.approx(expected, rel=1e-10)
    expected_s7 = ce_rows(7.0 * q @ c.T, np.arange(5)).mean()
    assert info_nce(t(q), t(c), scale=7.0).item() == pytest.approx(expected_s7, rel=1e-10)


def test_info_nce_extra_codes_and_symmetric(batch):
    q, c, e = batch
    cand = np.concatenate([c, e])
    forward = ce_rows(20.0 * q @ cand.T, np.arange(5))
    assert info_nce(t(q), t(c), extra_codes=t(e)).item() == pytest.approx(forward.mean())
    backward = ce_rows(20.0 * c @ q.T, np.arange(5))  # code j against the 5 queries only
    expected = (forward.mean() + backward.mean()) / 2
    got = info_nce(t(q), t(c), extra_codes=t(e), symmetric=True).item()
    assert got == pytest.approx(expected, rel=1e-10)


def test_info_nce_masking(batch):
    q, c, e = batch
    mask = np.zeros((5, 8), dtype=bool)
    mask[0, 3] = mask[0, 0] = True  # the diagonal entry must be ignored
    mask[2, 6] = True  # an extra code
    mask[4, 1] = True
    logits = 20.0 * q @ np.concatenate([c, e]).T
    masked = logits.copy()
    masked[0, 3] = masked[2, 6] = masked[4, 1] = -np.inf
    forward = ce_rows(masked, np.arange(5))
    got = info_nce(t(q), t(c), extra_codes=t(e), false_negative_mask=t(mask)).item()
    assert got == pytest.approx(forward.mean(), rel=1e-10)
    assert got < info_nce(t(q), t(c), extra_codes=t(e)).item()  # fewer negatives, lower loss
    # code->query direction: code j against query i is dropped where mask[i, j]
    back = 20.0 * c @ q.T
    back[3, 0] = back[1, 4] = -np.inf
    expected = (forward.mean() + ce_rows(back, np.arange(5)).mean()) / 2
    got_sym = info_nce(t(q), t(c), extra_codes=t(e), symmetric=True, false_negative_mask=t(mask))
    assert got_sym.item() == pytest.approx(expected, rel=1e-10)


def test_false_negative_mask_from_keys():
    mask = false_negative_mask(
        torch.tensor([1, 2, 1, 3]),  # queries 0 and 2 are the same text
        torch.tensor([10, 11, 12, 11]),  # codes 1 and 3 are the same text
        extra_code_keys=torch.tensor([12, 99]),
        extra_query_keys=torch.tensor([7, 3]),
    )
    expected = torch.zeros((4, 6), dtype=torch.bool)
    expected[torch.arange(4), torch.arange(4)] = True
    expected[0, 2] = expected[2, 0] = expected[1, 3] = expected[3, 1] = True
    expected[2, 4] = True  # extra code 0 is anchor 2's positive
    expected[3, 5] = True  # extra 1 comes from anchor 3's query
    assert torch.equal(mask, expected)
    assert false_negative_mask(torch.tensor([1, 2]), torch.tensor([5, 5])).shape == (2, 2)


def test_info_nce_gradient_flows_and_half_precision(batch):
    q, c, _ = batch
    qt = t(q).float().requires_grad_()
    info_nce(qt, t(c).float()).backward()
    assert qt.grad is not None and qt.grad.abs().sum() > 0
    half = info_nce(t(q).bfloat16(), t(c).bfloat16())
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(info_nce(t(q), t(c)).item(), rel=0.05)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"q": torch.zeros(3, 4), "c": torch.zeros(2, 4)}, "q and c"),
        ({"q": torch.zeros(3), "c": torch.zeros(3)}, "q and c"),
        ({"extra_codes": torch.zeros(2, 5)}, "extra_codes"),
        ({"scale": 0.0}, "scale"),
        ({"false_negative_mask": torch.zeros(3, 4, dtype=torch.bool)}, "false_negative_mask"),
        ({"false_negative_mask": torch.zeros(3, 3)}, "bool"),
    ],
)
def test_info_nce_rejects_bad_arguments(kwargs, match):
    args = {"q": torch.zeros(3, 4), "c": torch.zeros(3, 4), **kwargs}
    with pytest.raises(ValueError, match=match):
        info_nce(**args)


def test_info_nce_key_mask_without_distribution_matches_hand_mask(batch):
    q, c, e = batch
    # queries 0 and 2 share their text; extra 0 has pair 4's code text
    qk, ck, ek = torch.tensor([0, 1, 0, 2, 3]), torch.arange(5), torch.tensor([4, 9, 9])
    mask = false_negative_mask(qk, ck, ek)
    hand = torch.zeros((5, 8), dtype=torch.bool)
    hand[torch.arange(5), torch.arange(5)] = True
    hand[0, 2] = hand[2, 0] = True  # the same query text
    hand[4, 5] = True  # extra 0 is pair 4's code
    assert torch.equal(mask, hand)
    # in one process the global (N, N + E) mask is the batch's (B, B + E) mask
    got = info_nce(t(q), t(c), 20.0, t(e), symmetric=True, false_negative_mask=mask)
    expected = info_nce(t(q), t(c), 20.0, t(e), symmetric=True, false_negative_mask=hand)
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)
    assert got.item() < info_nce(t(q), t(c), 20.0, t(e), symmetric=True).item()
    x = torch.ones(2, 3)
    assert gather_with_grad(x) is x


def dense_global_loss(q: np.ndarray, c: np.ndarray, scale: float) -> float:
    return float(ce_rows(scale * q @ c.T, np.arange(len(q))).mean())


def test_global_loss_matches_dense_and_blocks():
    rng = np.random.default_rng(1)
    q, c = unit(rng, 37, 6), unit(rng, 37, 6)
    expected = dense_global_loss(q, c, 20.0)
    for block in (1, 5, 37, 4096):
        assert global_loss(q, c, 20.0, block_size=block) == pytest.approx(expected, rel=1e-12)
    assert global_loss(t(q).float(), t(c).float(), 20.0, 8) == pytest.approx(expected, rel=1e-5)


def test_global_loss_is_at_least_batch_loss_for_any_assignment():
    rng = np.random.default_rng(2)
    n = 40
    q, c = unit(rng, n, 4), unit(rng, n, 4)
    l_global = global_loss(q, c, 20.0, block_size=16)
    for k in (1, 4, 8, 10, 40):
        for _ in range(5):
            perm = rng.permutation(n)
            batches = [perm[i : i + k] for i in range(0, n, k)]
            l_train = batch_loss(q, c, batches, 20.0)
            assert l_global - l_train >= 0
    # one batch holding everything is the global loss; singleton batches have zero loss
    assert batch_loss(q, c, [np.arange(n)], 20.0) == pytest.approx(l_global, rel=1e-12)
    assert batch_loss(q, c, [[i] for i in range(n)], 20.0) == pytest.approx(0.0, abs=1e-12)


def test_batch_loss_matches_info_nce_per_batch():
    rng = np.random.default_rng(3)
    q, c = unit(rng, 10, 4), unit(rng, 10, 4)
    batches = [np.array([0, 3, 5, 7]), np.array([1, 2, 4, 6, 8, 9])]
    per_batch = [info_nce(t(q[b]), t(c[b]), 20.0).item() * len(b) for b in batches]
    assert batch_loss(q, c, batches, 20.0) == pytest.approx(sum(per_batch) / 10, rel=1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda q, c: global_loss(q, c[:3]), "queries and codes"),
        (lambda q, c: global_loss(q[:0], c[:0]), "N > 0"),
        (lambda q, c: global_loss(q, c, scale=-1.0), "scale"),
        (lambda q, c: global_loss(q, c, block_size=0), "block_size"),
        (lambda q, c: batch_loss(q, c, []), "no anchors"),
        (lambda q, c: batch_loss(q, c, [[]]), "no anchors"),
    ],
)
def test_diagnostics_reject_bad_arguments(call, match):
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match=match):
        call(unit(rng, 4), unit(rng, 4))


def _torchrun_available() -> bool:
    return (
        dist.is_available()
        and dist.is_gloo_available()
        and importlib.util.find_spec("torch.distributed.run") is not None
    )


@pytest.mark.skipif(not _torchrun_available(), reason="torch.distributed with gloo not available")
def test_two_process_global_batch_matches_single_process():
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*cmd, str(REPO / "tests" / "dist_loss_check.py")],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("cases match the single-process loss and gradients") == 2
