"""Dropout whose random mask is cheap on a CPU, for fine-tuning transformers there.

On a CPU, ``torch.nn.functional.dropout`` draws one Mersenne-Twister number per element; in a
MiniLM training step (batch 32, codes of 128 tokens) that is about 30 % of the step, most of
it in the attention probabilities. Here each 64-bit draw gives the masks of four elements (16
random bits each), so the drop probability is rounded to a multiple of 2**-16 (0.1 becomes
0.1000061) and kept elements are scaled by 1 / (1 - that p). Otherwise it is the same
operation: each element kept independently, the same RNG (torch's default generator, so
``torch.manual_seed`` fixes it), identity in eval mode. Other devices use the native dropout.

``use_fast_dropout(encoder)`` swaps a Hugging Face encoder's ``nn.Dropout`` modules and its
attention function (registered with transformers' AttentionInterface; eval-mode attention
stays scaled-dot-product attention) and changes no weights and nothing that is saved.
"""

from __future__ import annotations

import torch
from torch import nn

LEVELS = 2**16  # each element's mask uses 16 random bits
ATTENTION = "codesearch_fast_dropout"


def rounded_p(p: float) -> float:
    """The drop probability actually used for ``p``: the nearest multiple of 1 / LEVELS."""
    return round(p * LEVELS) / LEVELS


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """Bool mask, True where an element is kept: independently with probability 1 - rounded_p."""
    n = int(torch.Size(shape).numel())
    bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None)
    uniform16 = bits.view(torch.int16)[:n].view(shape)  # uniform on [-2**15, 2**15)
    return uniform16 >= round(p * LEVELS) - LEVELS // 2


def apply_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with the cheap mask on a CPU."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or not 0.0 < rounded_p(p) < 1.0:
        return nn.functional.dropout(x, p, training)
    return torch.where(keep_mask(x.shape, p), x * (1.0 / (1.0 - rounded_p(p))), 0.0)


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with the cheap CPU mask."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_dropout(x, self.p, self.training)


def attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Transformers attention function: scaled-dot-product attention, with the dropout of the
    attention probabilities drawn by ``apply_dropout`` on a CPU. ``attention_mask`` comes from
    ``sdpa_mask``: None, bool (True: attend) or additive float, (B, 1 or H, Lq, Lk)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if dropout == 0.0 or query.device.type != "cpu" or kwargs.get("is_causal"):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    key, value = _repeat_kv(module, key), _repeat_kv(module, value)
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            weights = weights.masked_fill(~attention_mask, torch.finfo(weights.dtype).min)
        else:
            weights = weights + attention_mask
    weights = apply_dropout(nn.functional.softmax(weights, dim=-1), dropout)
    out = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return out, weights


def _repeat_kv(module: nn.Module, states: torch.Tensor) -> torch.Tensor:
    """Grouped-query attention: repeat key/value heads to the query heads (as transformers)."""
    groups = getattr(module, "num_key_value_groups", 1)
    return states if groups == 1 else states.repeat_interleave(groups, dim=1)


def register() -> None:
    """Make ``ATTENTION`` a transformers attention implementation (with sdpa's masks)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def use_fast_dropout(encoder: nn.Module) -> int:
    """Swap ``encoder``'s dropout modules for FastDropout and, where its attention runs through
    transformers' AttentionInterface as sdpa or eager, its attention function for ``attention``.
    Returns the number of dropout modules swapped."""
    swapped = 0
    for parent in encoder.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, FastDropout(child.p, child.inplace))
                swapped += 1
    config = getattr(encoder, "config", None)
    if config is not None and getattr(config, "_attn_implementation", None) in ("sdpa", "eager"):
        register()
        try:
            encoder.set_attn_implementation(ATTENTION)
        except (ValueError, AttributeError):
            pass  # a model without the AttentionInterface keeps its own attention
    return swapped
