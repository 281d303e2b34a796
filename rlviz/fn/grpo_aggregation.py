r"""How a GRPO trainer turns per-token losses into one number (chapter 15).

A batch holds :math:`B` groups of :math:`G` answers; answer :math:`i` has :math:`|y_i|` tokens
and per-token terms :math:`x_{i,t}` (the clipped surrogate, a KL estimate, ...), an array
``x_t`` of shape ``(B, G, L)`` with ``mask_t`` True on the answers' tokens. The four
aggregation modes carry verl's names (``loss_agg_mode`` of ``verl.trainer.ppo.core_algos.agg_loss``),
so a conformance test maps them one to one; :math:`N = BG` answers and :math:`T = \sum_i |y_i|`
tokens in the batch:

* ``"seq-mean-token-mean"`` (DeepSeekMath, Shao et al. 2024, eq. 3):
  :math:`\frac1N \sum_i \frac{1}{|y_i|} \sum_t x_{i,t}`;
* ``"token-mean"`` (DAPO, Yu et al. 2025): :math:`\frac1T \sum_{i,t} x_{i,t}`;
* ``"seq-mean-token-sum-norm"`` (Dr. GRPO, Liu et al. 2025): :math:`\frac{1}{N C}\sum_{i,t}
  x_{i,t}` with a constant :math:`C` (``norm``, default the padded length :math:`L`). verl's
  older ``agg_loss`` divides by :math:`C` only (not by :math:`N`): the same direction, a
  factor :math:`N` larger;
* ``"seq-mean-token-sum"``: :math:`\frac1N \sum_{i,t} x_{i,t}`.

Gradient accumulation (:func:`accumulated`) splits the batch into micro-batches; each
micro-batch's loss is aggregated on its own and the losses are averaged, unless the *global*
counts :math:`N` and :math:`T` of the whole batch are passed to every micro-batch
(``n_seqs``, ``n_tokens``; verl's ``global_batch_size`` and ``batch_num_tokens``) and the
losses summed, which gives the full-batch loss in every mode.
"""

from __future__ import annotations

import numpy as np
import torch

from rlviz.fn.registry import NotInLibrary, Registry

__all__ = [
    "AGGREGATIONS",
    "AGG_MODES",
    "aggregate",
    "group_aggregate",
    "accumulated",
    "rloo_advantages_reference",
    "zero_variance_probability",
]

AGGREGATIONS = Registry("loss_agg")
r"""The aggregation modes: name -> :class:`rlviz.fn.registry.Entry` whose ``fn(x_t, m, dims,
n_seqs, n_tokens, norm)`` reduces the per-token terms ``x_t`` (already 0 on padding) with the
float mask ``m`` over the axes ``dims`` (``(0, 1, 2)``: the batch; ``(1, 2)``: each group), where
``n_seqs`` is the number of answers summed over, ``n_tokens`` None (the tokens counted by ``m``)
or a global count, ``norm`` None (the padded length) or Dr. GRPO's constant. ``params`` lists
which of ``n_tokens`` / ``norm`` a mode reads."""


@AGGREGATIONS.register(
    "seq-mean-token-mean",
    label="seq-mean-token-mean (GRPO paper)",
    paper="DeepSeekMath (Shao et al. 2024), eq. 3",
    trl='loss_type="grpo"',
    verl='loss_agg_mode="seq-mean-token-mean"',
    params=("n_seqs",),
)
def _seq_mean_token_mean(x_t, m, dims, n_seqs, n_tokens, norm):
    return (x_t.sum(dim=-1) / m.sum(dim=-1)).sum(dim=dims[:-1]) / n_seqs


@AGGREGATIONS.register(
    "token-mean",
    label="token-mean (DAPO)",
    paper="DAPO (Yu et al. 2025)",
    trl='loss_type="dapo" (or "bnpo")',
    verl='loss_agg_mode="token-mean"',
    params=("n_tokens",),
)
def _token_mean(x_t, m, dims, n_seqs, n_tokens, norm):
    return x_t.sum(dim=dims) / (m.sum(dim=dims) if n_tokens is None else n_tokens)


@AGGREGATIONS.register(
    "seq-mean-token-sum-norm",
    label="seq-mean-token-sum-norm (Dr. GRPO)",
    paper="Dr. GRPO (Liu et al. 2025)",
    trl='loss_type="dr_grpo" (C = max_completion_length)',
    verl='loss_agg_mode="seq-mean-token-sum-norm" (C = loss_scale_factor)',
    params=("n_seqs", "norm"),
)
def _seq_mean_token_sum_norm(x_t, m, dims, n_seqs, n_tokens, norm):
    return (x_t.sum(dim=-1) / (x_t.shape[-1] if norm is None else norm)).sum(dim=dims[:-1]) / n_seqs


@AGGREGATIONS.register(
    "seq-mean-token-sum",
    label="seq-mean-token-sum",
    paper="(token sums averaged over answers; LUSPO's aggregation)",
    trl='loss_type="luspo"',
    verl='loss_agg_mode="seq-mean-token-sum"',
    params=("n_seqs",),
)
def _seq_mean_token_sum(x_t, m, dims, n_seqs, n_tokens, norm):
    return x_t.sum(dim=-1).sum(dim=dims[:-1]) / n_seqs


@AGGREGATIONS.register(
    "token-sum",
    label="token-sum (no normaliser)",
    paper="(the plain sum; verl's token-sum)",
    trl=NotInLibrary("TRL 1.16's loss types all divide by a count or a constant"),
    verl='loss_agg_mode="token-sum"',
)
def _token_sum(x_t, m, dims, n_seqs, n_tokens, norm):
    return x_t.sum(dim=dims)


AGG_MODES = AGGREGATIONS.names()


def _check(x_t, mask_t) -> torch.Tensor:
    if not isinstance(x_t, torch.Tensor) or not x_t.is_floating_point():
        raise ValueError(f"x_t must be a floating-point torch.Tensor, got {type(x_t).__name__}")
    if x_t.ndim != 3:
        raise ValueError(f"x_t must have shape (B, G, L), got {tuple(x_t.shape)}")
    mask_t = torch.as_tensor(mask_t)
    if mask_t.shape != x_t.shape:
        raise ValueError(
            f"mask_t must have the shape of x_t {tuple(x_t.shape)}, got {tuple(mask_t.shape)}"
        )
    mask_t = mask_t.bool()
    if not bool(mask_t.any(dim=-1).all()):
        raise ValueError("mask_t must mark at least one token per answer")
    return mask_t


def _counts(mode: str, n_seqs, n_tokens, norm) -> None:
    """Each count > 0, and only the counts ``mode`` reads (a count the mode ignores is refused:
    it would silently do nothing)."""
    reads = AGGREGATIONS[mode].params
    for name, v in (("n_seqs", n_seqs), ("n_tokens", n_tokens), ("norm", norm)):
        if v is None:
            continue
        if not v > 0:
            raise ValueError(f"{name} must be > 0, got {v!r}")
        if name not in reads:
            raise ValueError(
                f"{name} is not read by mode {mode!r} (it reads {', '.join(reads) or 'none'}), "
                f"got {name}={v!r}"
            )


def _reduce(x_t, mask_t, mode, dims, n_seqs, n_tokens, norm):
    """The registered mode ``mode``, summing over ``dims`` (all three axes, or the group's two)."""
    m = mask_t.to(x_t.dtype)
    summed_t = torch.where(mask_t, x_t, torch.zeros_like(x_t))
    n_seqs = float(np.prod([x_t.shape[d] for d in dims[:-1]])) if n_seqs is None else n_seqs
    return AGGREGATIONS[mode].fn(summed_t, m, dims, n_seqs, n_tokens, norm)


def aggregate(
    x_t: torch.Tensor, mask_t, mode: str = "token-mean", *, n_seqs=None, n_tokens=None, norm=None
) -> torch.Tensor:
    r"""One scalar from the per-token terms ``x_t`` ``(B, G, L)`` of a batch (see the module
    docstring for the four ``mode``\ s). ``n_seqs`` and ``n_tokens`` replace the batch's own
    :math:`N` and :math:`T` (pass the whole batch's counts to every micro-batch);
    ``norm`` is Dr. GRPO's constant :math:`C` (default ``L``); a count that ``mode`` does not
    read is refused (:data:`AGGREGATIONS`' ``params``). Padding never enters."""
    mode = AGGREGATIONS.check(mode, "mode")
    mask_t = _check(x_t, mask_t)
    _counts(mode, n_seqs, n_tokens, norm)
    return _reduce(x_t, mask_t, mode, (0, 1, 2), n_seqs, n_tokens, norm)


def group_aggregate(x_t: torch.Tensor, mask_t, mode: str = "token-mean", *, norm=None):
    """:func:`aggregate` of each group on its own, shape ``(B,)``: entry ``b`` equals
    ``aggregate(x_t[b:b+1], mask_t[b:b+1], mode)`` (one group per batch)."""
    mode = AGGREGATIONS.check(mode, "mode")
    mask_t = _check(x_t, mask_t)
    _counts(mode, None, None, norm)
    return _reduce(x_t, mask_t, mode, (1, 2), None, None, norm)


def accumulated(
    x_t: torch.Tensor, mask_t, mode: str, sizes, *, global_counts: bool = False, norm=None
):
    r"""The loss a trainer with gradient accumulation differentiates: the batch split along
    the group axis into consecutive micro-batches of ``sizes`` groups (summing to ``B``).

    * ``global_counts=False`` (the usual loop, ``loss / accumulation_steps``):
      :math:`\frac1M \sum_{m=1}^{M} \operatorname{agg}(x^{(m)})`, each micro-batch normalised
      by its own counts;
    * ``global_counts=True``: :math:`\sum_m \operatorname{agg}(x^{(m)}; N, T)`, every
      micro-batch normalised by the whole batch's :math:`N` answers and :math:`T` tokens:
      equal to :func:`aggregate` of the whole batch in every mode.
    """
    mode = AGGREGATIONS.check(mode, "mode")
    mask_t = _check(x_t, mask_t)
    _counts(mode, None, None, norm)
    sizes = [int(s) for s in sizes]
    if any(s < 1 for s in sizes) or sum(sizes) != x_t.shape[0]:
        raise ValueError(
            f"sizes must be positive and sum to B = {x_t.shape[0]}, got {sizes} (sum {sum(sizes)})"
        )
    counts = {}
    if global_counts:  # the whole batch's counts, those the mode reads
        whole = {"n_seqs": float(mask_t.shape[0] * mask_t.shape[1]), "n_tokens": mask_t.sum()}
        counts = {k: v for k, v in whole.items() if k in AGGREGATIONS[mode].params}
    losses = [
        aggregate(x, m, mode, norm=norm, **counts)
        for x, m in zip(torch.split(x_t, sizes), torch.split(mask_t, sizes))
    ]
    total = torch.stack(losses).sum()
    return total if global_counts else total / len(sizes)


# ---------------------------------------------------------------- advantages
def rloo_advantages_reference(r) -> np.ndarray:
    r"""RLOO (Kool et al. 2019; Ahmadian et al. 2024), the obvious loop:
    :math:`A_i = r_i - \frac{1}{G-1}\sum_{j\ne i} r_j`, ``(B, G)`` -> ``(B, G)``."""
    r = np.asarray(r, dtype=float)
    if r.ndim != 2 or r.shape[1] < 2:
        raise ValueError(f"r must have shape (B, G) with G >= 2, got {r.shape}")
    B, G = r.shape
    out = np.empty_like(r)
    for b in range(B):
        for i in range(G):
            others = [r[b, j] for j in range(G) if j != i]
            out[b, i] = r[b, i] - sum(others) / (G - 1)
    return out


def zero_variance_probability(p, group_size: int):
    r"""Probability that a group of :math:`K` = ``group_size`` answers with binary reward and
    pass rate :math:`p` is all right or all wrong: :math:`p^K + (1-p)^K`. Such a group has
    every centred advantage 0, so it carries no policy gradient."""
    p = np.asarray(p, dtype=float)
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"p must be in [0, 1], got {p}")
    if int(group_size) != group_size or group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    return p**group_size + (1 - p) ** group_size
