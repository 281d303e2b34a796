r"""The pieces of GRPO as pure torch functions (chapter 14; notes section 14).

For each prompt :math:`x` the old policy samples a *group* of :math:`G` answers
:math:`y_1, \dots, y_G`, each scored by a reward :math:`r_i = r(x, y_i)`. GRPO replaces
PPO's learned critic by a baseline computed from the group. :math:`G` is the group size (the
notes and the chapter's text write it :math:`K`; DeepSeekMath writes :math:`G`). Shapes, used
throughout:

* ``r``: rewards ``(B, G)``, ``B`` prompts with ``G`` answers each;
* ``logp_t``, ``logp_old_t``, ``logp_ref_t``: per-token log-probabilities
  :math:`\log\pi(y_{i,t} \mid x, y_{i,<t})` of the current, old (sampling) and reference
  policies, ``(B, G, L)``, ``L`` the longest answer;
* ``mask_t``: ``(B, G, L)`` booleans, True on the tokens of each answer (padding False);
  every answer has at least one token.

The variants (the notes; DeepSeekMath, Shao et al. 2024; Dr. GRPO, Liu et al. 2025; leave-one-out,
Kool et al. 2019) are options of :func:`group_advantages` and :func:`grpo_objective`, so the
chapter's exact and trained comparisons call the same code. The checks at the door are about
shapes, ranges and NaN rewards (``ValueError`` naming the argument); log-probabilities are not
scanned for NaN (a synchronisation per call inside a training loop).
"""

from __future__ import annotations

import torch

from rlviz import _validate as validate
from rlviz.fn.ppo_loss import clipped_surrogate, k3
from rlviz.fn.registry import NotInLibrary, Registry

__all__ = [
    "ADVANTAGES",
    "RATIOS",
    "LENGTH_NORMS",
    "KL_ESTIMATORS",
    "KL_PLACEMENTS",
    "group_advantages",
    "kl_reward_penalty",
    "mixed_groups",
    "sequence_log_prob",
    "token_ratios",
    "sequence_ratios",
    "kl_k1",
    "kl_k2",
    "kl_k3",
    "kl_estimate",
    "length_normalised",
    "grpo_objective",
]

RATIOS = ("sequence", "token")  # chapter 14's objective (grpo_objective)
LENGTH_NORMS = ("sequence", "group", "constant")


# ---------------------------------------------------------------- checks at the door
def _tensor(name: str, x, ndim: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"{name} must be a tensor of numbers, got {type(x).__name__}"
            ) from None
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if x.ndim != ndim:
        want = "(B, G)" if ndim == 2 else "(B, G, L)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    return x


def _rewards(r, min_group: int = 1) -> torch.Tensor:
    r = torch.as_tensor(r, dtype=torch.float64) if not isinstance(r, torch.Tensor) else r
    if not r.is_floating_point():
        r = r.to(torch.float64)
    if r.ndim < 2:
        raise ValueError(f"r must have shape (B, G) (or (..., B, G)), got {tuple(r.shape)}")
    if r.shape[-1] < min_group:
        raise ValueError(
            f"r must have G >= {min_group} answers per prompt (last axis), got G = {r.shape[-1]}"
        )
    bad = ~torch.isfinite(r)
    if bool(bad.any()):
        idx = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"r must be finite (no NaN or inf), got {float(r[idx])} at index {idx}")
    return r


def _token_tensors(mask_t, **tensors) -> torch.Tensor:
    """Check that the (B, G, L) tensors and the mask agree; return the mask as a bool tensor."""
    if not isinstance(mask_t, torch.Tensor):
        mask_t = torch.as_tensor(mask_t)
    if mask_t.ndim != 3:
        raise ValueError(f"mask_t must have shape (B, G, L), got {tuple(mask_t.shape)}")
    for name, x in tensors.items():
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError(
                f"{name} must be a floating-point torch.Tensor, got {type(x).__name__}"
            )
        if x.shape != mask_t.shape:
            raise ValueError(
                f"{name} must have the shape of mask_t {tuple(mask_t.shape)}, got "
                f"{tuple(x.shape)} (no silent broadcasting)"
            )
    mask_t = mask_t.bool()
    if not bool(mask_t.any(dim=-1).all()):
        idx = tuple(int(i) for i in (~mask_t.any(dim=-1)).nonzero()[0])
        raise ValueError(f"mask_t must mark at least one token per answer, answer {idx} is empty")
    return mask_t


def _masked(x_t: torch.Tensor, mask_t: torch.Tensor) -> torch.Tensor:
    """``x_t`` on the answers' tokens, 0 on padding (``where``, so no NaN leaks from padding)."""
    return torch.where(mask_t, x_t, torch.zeros_like(x_t))


# ---------------------------------------------------------------- group advantages
ADVANTAGES = Registry("advantage")
r"""The advantage estimators: name -> entry whose ``fn(r, std_eps)`` maps rewards ``(..., B,
G)`` to advantages of the same shape (``G >= 2``; leading axes index independent batches)."""


def _centred(r: torch.Tensor) -> torch.Tensor:
    return r - r.mean(dim=-1, keepdim=True)


@ADVANTAGES.register(
    "mean",
    label="group mean (notes; Dr. GRPO)",
    paper="the notes, section 14; Dr. GRPO (Liu et al. 2025)",
    trl='scale_rewards="none"',
    verl='adv_estimator="grpo", norm_adv_by_std_in_grpo=False',
)
def _adv_mean(r, std_eps):
    return _centred(r)


@ADVANTAGES.register(
    "std",
    label="group mean / std (DeepSeekMath)",
    paper="DeepSeekMath (Shao et al. 2024), sec. 4.1.2",
    trl='scale_rewards="group" (the default)',
    verl='adv_estimator="grpo" (norm_adv_by_std_in_grpo=True, the default)',
)
def _adv_std(r, std_eps):
    return _centred(r) / (r.std(dim=-1, keepdim=True) + std_eps)


@ADVANTAGES.register(
    "batch-std",
    label="group mean / batch std",
    paper="REINFORCE++'s global normalisation applied to group-centred rewards (Hu 2025)",
    trl='scale_rewards="batch"',
    verl=NotInLibrary(
        "verl 0.9.1's grpo estimators divide by each group's std; reinforce_plus_plus_baseline "
        "whitens token advantages, a different estimator"
    ),
)
def _adv_batch_std(r, std_eps):
    return _centred(r) / (r.flatten(-2).std(dim=-1)[..., None, None] + std_eps)


@ADVANTAGES.register(
    "loo",
    label="leave-one-out (RLOO)",
    paper="Kool et al. 2019; Ahmadian et al. 2024",
    trl=NotInLibrary("TRL 1.16's GRPOTrainer has no leave-one-out baseline (RLOOTrainer does)"),
    verl='adv_estimator="rloo"',
)
def _adv_loo(r, std_eps):
    G = r.shape[-1]
    return _centred(r) * (G / (G - 1))


def group_advantages(r, kind: str = "mean", *, std_eps: float = 1e-4) -> torch.Tensor:
    r"""Group-relative advantages of rewards ``r`` ``(B, G)`` (or ``(..., B, G)``: leading axes
    index independent batches), the same shape; ``kind`` a name of :data:`ADVANTAGES`:

    * ``"mean"`` (the notes, section 14; Dr. GRPO): :math:`A_i = r_i - \bar r`,
      :math:`\bar r = \frac1G \sum_{j=1}^G r_j` (the mean includes :math:`r_i` itself);
    * ``"std"`` (DeepSeekMath, Shao et al. 2024, sec. 4.1.2):
      :math:`A_i = (r_i - \bar r) / (\operatorname{std}(r) + \varepsilon)`, the group's
      standard deviation;
    * ``"batch-std"``: :math:`(r_i - \bar r) / (\operatorname{std}_\text{batch} + \varepsilon)`,
      the standard deviation of all :math:`BG` rewards of the batch (one scale for every group;
      TRL's ``scale_rewards="batch"``);
    * ``"loo"`` (leave-one-out, Kool et al. 2019):
      :math:`A_i = r_i - \frac{1}{G-1}\sum_{j \ne i} r_j = \frac{G}{G-1}(r_i - \bar r)`.

    Standard deviations with Bessel's correction (``torch.std``, as TRL computes them),
    :math:`\varepsilon` = ``std_eps`` > 0. G >= 2 (with one answer per group every advantage is
    0 or undefined). NaN or inf rewards raise.
    """
    entry = ADVANTAGES.get(kind, "kind")
    r = _rewards(r, min_group=2)
    if not std_eps > 0:
        raise ValueError(f"std_eps must be > 0, got {std_eps!r}")
    return entry.fn(r, std_eps)


def mixed_groups(r: torch.Tensor) -> torch.Tensor:
    """``(..., B)`` booleans from rewards ``(..., B, G)``: the groups whose rewards are not all
    equal (DAPO's dynamic sampling keeps these; the others have zero advantages and no
    gradient, chapter 15)."""
    return r.max(dim=-1).values > r.min(dim=-1).values


# ---------------------------------------------------------------- ratios
def sequence_log_prob(logp_t: torch.Tensor, mask_t) -> torch.Tensor:
    r""":math:`\log\pi(y_i \mid x) = \sum_t \log\pi(y_{i,t} \mid x, y_{i,<t})` over the answer's
    tokens, shape ``(B, G)``."""
    mask_t = _token_tensors(mask_t, logp_t=logp_t)
    return _masked(logp_t, mask_t).sum(dim=-1)


def token_ratios(logp_t: torch.Tensor, logp_old_t: torch.Tensor, mask_t) -> torch.Tensor:
    r"""Per-token ratios :math:`\rho_{i,t} = \pi_\theta(y_{i,t} \mid x, y_{i,<t}) /
    \pi_{\theta_\text{old}}(y_{i,t} \mid x, y_{i,<t})` (DeepSeekMath), ``(B, G, L)``; 1 on padding."""
    mask_t = _token_tensors(mask_t, logp_t=logp_t, logp_old_t=logp_old_t)
    return torch.exp(_masked(logp_t - logp_old_t, mask_t))


def sequence_ratios(logp_t: torch.Tensor, logp_old_t: torch.Tensor, mask_t) -> torch.Tensor:
    r"""The notes' whole-sequence ratio
    :math:`\rho_i = \pi_\theta(y_i \mid x) / \pi_{\theta_\text{old}}(y_i \mid x)
    = \prod_t \rho_{i,t}`, shape ``(B, G)``."""
    mask_t = _token_tensors(mask_t, logp_t=logp_t, logp_old_t=logp_old_t)
    return torch.exp(_masked(logp_t - logp_old_t, mask_t).sum(-1))


# ---------------------------------------------------------------- KL estimators
def _log_ratio(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    for name, x in (("logp", logp), ("logp_ref", logp_ref)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError(
                f"{name} must be a floating-point torch.Tensor, got {type(x).__name__}"
            )
    if logp.shape != logp_ref.shape:
        raise ValueError(
            f"logp_ref must have the shape of logp {tuple(logp.shape)}, got {tuple(logp_ref.shape)}"
        )
    return logp_ref - logp  # log of rho = pi_ref(y) / pi(y)


def kl_k1(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    r"""The naive estimator of :math:`\mathrm{KL}(\pi \,\|\, \pi_\text{ref})` from
    :math:`y \sim \pi` (Schulman 2020): :math:`k_1 = -\log\rho = \log\pi(y) - \log\pi_\text{ref}(y)`,
    :math:`\rho = \pi_\text{ref}(y)/\pi(y)`. Unbiased; negative for some :math:`y`. Any shape,
    elementwise."""
    return -_log_ratio(logp, logp_ref)


def kl_k2(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    r""":math:`k_2 = \tfrac12 (\log\rho)^2` (Schulman 2020): non-negative, biased (its mean is
    a second-order approximation of the KL). Any shape, elementwise."""
    return 0.5 * _log_ratio(logp, logp_ref) ** 2


def kl_k3(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    r""":math:`k_3 = \rho - 1 - \log\rho` (Schulman 2020; DeepSeekMath eq. 4): unbiased
    (:math:`\mathbb E_{y\sim\pi}[\rho] = 1`) and non-negative (:math:`\log\rho \le \rho - 1`).
    Any shape, elementwise."""
    return k3(_log_ratio(logp, logp_ref))


KL_ESTIMATORS = Registry("kl")
"""The per-token KL estimators: name -> entry whose ``fn(logp, logp_ref)`` is elementwise."""
KL_ESTIMATORS.register(
    "k1",
    label="k1 = log pi - log pi_ref",
    paper="Schulman 2020",
    trl=NotInLibrary("TRL 1.16's GRPOTrainer estimates the KL with k3 only"),
    verl='kl_loss_type="k1" (or "kl")',
)(kl_k1)
KL_ESTIMATORS.register(
    "k2",
    label="k2 = (log pi - log pi_ref)^2 / 2",
    paper="Schulman 2020",
    trl=NotInLibrary("TRL 1.16's GRPOTrainer estimates the KL with k3 only"),
    verl='kl_loss_type="k2" (or "mse")',
)(kl_k2)
KL_ESTIMATORS.register(
    "k3",
    label="k3 = rho - 1 - log rho",
    paper="Schulman 2020; DeepSeekMath eq. 4",
    trl="beta > 0 (use_bias_correction_kl=False; True multiplies by the ratio)",
    verl='kl_loss_type="k3" (or "low_var_kl"; verl clamps to [-10, 10])',
)(kl_k3)


def kl_estimate(name: str, logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """The estimator ``name`` of :data:`KL_ESTIMATORS` applied elementwise."""
    return KL_ESTIMATORS.get(name, "kl").fn(logp, logp_ref)


KL_PLACEMENTS = Registry("kl_placement")
"""Where the KL to the reference enters: ``"loss"`` (each token's term minus beta k-hat) or
``"reward"`` (the answer's reward minus beta times its summed k1, fixed at rollout)."""


@KL_PLACEMENTS.register(
    "loss",
    label="KL in the loss",
    paper="DeepSeekMath (Shao et al. 2024)",
    trl="beta > 0",
    verl="actor.use_kl_loss=True",
)
def kl_loss_penalty(per_tok: torch.Tensor, k_t: torch.Tensor, beta: float) -> torch.Tensor:
    r"""Each token's term minus :math:`\beta\,\hat k_t` (``per_tok``, ``k_t`` alike)."""
    return per_tok - beta * k_t


@KL_PLACEMENTS.register(
    "reward",
    label="KL in the reward",
    paper="InstructGPT (Ouyang et al. 2022); the notes, section 14",
    trl=NotInLibrary("TRL 1.16's GRPOTrainer puts the KL in the loss only"),
    verl="algorithm.use_kl_in_reward=True (kl_penalty k1)",
)
def kl_reward_penalty(r, logp_old_t, logp_ref_t, mask_t, beta: float) -> torch.Tensor:
    r"""Rewards ``(B, G)`` minus :math:`\beta\sum_t k_1` of each answer under the sampling
    policy, a constant of the rollout: :math:`r_i - \beta \sum_t (\log\pi_\text{old}
    - \log\pi_\text{ref})(y_{i,t})`."""
    return r - beta * sequence_log_prob(kl_k1(logp_old_t, logp_ref_t), mask_t).double()


# ---------------------------------------------------------------- length normalisation
def length_normalised(x_t: torch.Tensor, mask_t, norm: str) -> torch.Tensor:
    r"""Aggregate per-token terms :math:`x_{i,t}` of each group into one number, shape ``(B,)``.

    * ``"sequence"`` (DeepSeekMath eq. 3): :math:`\frac1G\sum_i \frac{1}{|y_i|}\sum_t x_{i,t}`;
    * ``"group"`` (per token of the group; DAPO's token-level mean):
      :math:`\sum_{i,t} x_{i,t} / \sum_i |y_i|`;
    * ``"constant"`` (Dr. GRPO, Liu et al. 2025): :math:`\frac{1}{G L}\sum_{i,t} x_{i,t}`,
      :math:`L` the maximum length (the last axis), the same for every group.
    """
    norm = validate.choice("norm", norm, LENGTH_NORMS)
    mask_t = _token_tensors(mask_t, x_t=x_t)
    m = mask_t.to(x_t.dtype)
    summed = (x_t * m).sum(dim=-1)  # (B, G)
    G, L = x_t.shape[1], x_t.shape[2]
    if norm == "sequence":
        return (summed / m.sum(dim=-1)).mean(dim=1)
    if norm == "group":
        return summed.sum(dim=1) / m.sum(dim=(1, 2))
    return summed.sum(dim=1) / (G * L)


# ---------------------------------------------------------------- the objective
def grpo_objective(
    logp_t: torch.Tensor,
    logp_old_t: torch.Tensor,
    adv: torch.Tensor,
    mask_t,
    *,
    epsilon,
    ratio: str = "sequence",
    length_norm: str | None = None,
    beta: float = 0.0,
    logp_ref_t: torch.Tensor | None = None,
    kl: str = "k3",
) -> torch.Tensor:
    r"""The GRPO objective of each group (to be *maximised*), shape ``(B,)``.

    ``ratio="sequence"`` (the notes, section 14), with :math:`\rho_i` of :func:`sequence_ratios`:

    .. math:: \mathcal L(x) = \frac1G \sum_{i=1}^G \Bigl[\min\bigl(\rho_i A_i,
              \operatorname{clip}(\rho_i, 1-\epsilon, 1+\epsilon) A_i\bigr)
              - \beta \sum_t \hat k_{i,t}\Bigr];

    ``ratio="token"`` (DeepSeekMath eq. 3), with :math:`\rho_{i,t}` of :func:`token_ratios`,
    aggregated over tokens by :func:`length_normalised` (``length_norm``, default
    ``"sequence"``, DeepSeekMath's :math:`\frac1G\sum_i\frac{1}{|y_i|}\sum_t`):

    .. math:: \mathcal L(x) = \operatorname{agg}_{i,t}\Bigl[\min\bigl(\rho_{i,t} A_i,
              \operatorname{clip}(\rho_{i,t}, 1-\epsilon, 1+\epsilon) A_i\bigr)
              - \beta\, \hat k_{i,t}\Bigr].

    :math:`\hat k_{i,t}` is the per-token KL estimator ``kl`` (:func:`kl_k3` by default, as in
    DeepSeekMath) between the current and the reference policy, with the sampled tokens held
    fixed; ``beta`` >= 0 (``logp_ref_t`` required when ``beta > 0``). ``adv`` ``(B, G)`` are the
    advantages (:func:`group_advantages`), constants. ``epsilon`` > 0 (the clip of
    :func:`rlviz.fn.ppo_loss.clipped_surrogate`).
    """
    ratio = validate.choice("ratio", ratio, RATIOS)
    beta = validate.non_negative("beta", beta)
    mask_t = _token_tensors(mask_t, logp_t=logp_t, logp_old_t=logp_old_t)
    if not isinstance(adv, torch.Tensor) or adv.shape != mask_t.shape[:2]:
        raise ValueError(
            f"adv must be a tensor of shape (B, G) = {tuple(mask_t.shape[:2])}, got "
            f"{tuple(adv.shape) if isinstance(adv, torch.Tensor) else type(adv).__name__}"
        )
    if beta > 0:
        if logp_ref_t is None:
            raise ValueError("logp_ref_t must be given when beta > 0")
        _token_tensors(mask_t, logp_ref_t=logp_ref_t)
        k_t = _masked(kl_estimate(kl, logp_t, logp_ref_t), mask_t)
    else:
        k_t = None
    adv = adv.to(logp_t.dtype).detach()
    if ratio == "sequence":
        if length_norm is not None:
            raise ValueError(
                f"length_norm applies to ratio='token' only, got {length_norm!r} "
                "with ratio='sequence' (the notes average whole sequences)"
            )
        rho = sequence_ratios(logp_t, logp_old_t, mask_t)
        per_seq = clipped_surrogate(rho, adv, epsilon)
        if k_t is not None:
            per_seq = per_seq - beta * k_t.sum(dim=-1)
        return per_seq.mean(dim=1)
    rho_t = token_ratios(logp_t, logp_old_t, mask_t)
    per_tok = clipped_surrogate(rho_t, adv[..., None].expand_as(rho_t), epsilon)
    if k_t is not None:
        per_tok = per_tok - beta * k_t
    return length_normalised(per_tok, mask_t, length_norm or "sequence")
