r"""GRPO and PPO with a critic on a small verifiable task (chapter 14).

**Task.** A prompt is two digits :math:`a, b \in \{1..9\}`; the answer is :math:`a + b` written
in decimal, then an end token: ``7 EOS`` or ``1 3 EOS`` (1 to 3 tokens). Reward 1 if the
answer is exactly right, else 0 (a verifiable reward). The 81 prompts are split, stratified by
whether :math:`a + b \ge 10` (a carry), into 61 RL-training prompts and 20 held-out prompts.

**Reference.** :func:`pretrain_reference` fits the policy by supervised learning (exact
cross-entropy against a target distribution, all 81 prompts) to a *corrupted* dataset: on
prompts with a carry the target answer forgets the carry with probability
``forget_carry`` (``3 EOS`` for 7 + 6). So the reference answers carry prompts wrongly when
decoding greedily (45 of the 81 prompts, 11 of the 20 held-out ones) and right only with
probability :math:`1 - \text{forget\_carry}` when sampling: RL has to change what the policy
believes on a whole class of prompts, not only sharpen it.

**Policy.** A GRU (embedding 32, hidden 64) reads ``a b =`` and emits the answer token by
token; generation of all :math:`B \times K` answers is one batched loop over the (at most 3)
answer steps. Success rates are exact: :math:`\pi(y^\star \mid x)` by teacher forcing of the
right answer, averaged over the prompts (the probability that a *sampled* answer is right).

Trainers (:func:`train_grpo`, :func:`train_ppo`) read top to bottom: rollout, advantages,
update; both are built from :mod:`rlviz.fn.grpo_loss`, :mod:`rlviz.fn.ppo_loss` and :mod:`rlviz.fn.returns`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from rlviz import _validate as Vd
from rlviz.fn.returns import gae
from rlviz.fn.grpo_loss import (ADVANTAGES, KL_ESTIMATORS, LENGTH_NORMS, RATIOS, group_advantages,
                   grpo_objective)
from rlviz.fn.ppo_loss import clipped_surrogate, value_loss

__all__ = ["EOS", "EQ", "MAX_LEN", "AdditionTask", "Policy", "pretrain_reference",
           "RunConfig", "GRPOConfig", "PPOConfig", "TrainLog", "train_grpo", "train_ppo", "success_rates",
           "greedy_success", "VARIANTS", "book_task", "run_seeds", "run_variants", "run_grid"]

EOS, EQ = 10, 11  # token ids: digits 0-9, then EOS and "="
MAX_LEN = 3


# ---------------------------------------------------------------- the task
@dataclass(frozen=True)
class AdditionTask:
    """Prompts ``(81, 2)``, right answers ``(81, 3)`` with mask, the carry flag and the split."""

    prompts: torch.Tensor
    answers: torch.Tensor
    answer_mask: torch.Tensor
    wrong: torch.Tensor  # the answer that forgets the carry
    wrong_mask: torch.Tensor
    carry: torch.Tensor
    train: torch.Tensor  # indices of the RL-training prompts
    held_out: torch.Tensor

    @staticmethod
    def make(held_out_fraction: float = 0.25, split_seed: int = 0) -> "AdditionTask":
        ab = np.array([(a, b) for a in range(1, 10) for b in range(1, 10)])
        s = ab.sum(1)
        carry = s >= 10

        def encode(digits_list):
            tok = np.full((len(digits_list), MAX_LEN), EOS)
            mask = np.zeros((len(digits_list), MAX_LEN), dtype=bool)
            for k, d in enumerate(digits_list):
                seq = list(d) + [EOS]
                tok[k, :len(seq)] = seq
                mask[k, :len(seq)] = True
            return torch.as_tensor(tok), torch.as_tensor(mask)

        right = [[1, v - 10] if v >= 10 else [v] for v in s]
        wrong = [[v - 10] if v >= 10 else [v] for v in s]
        rng = np.random.default_rng(split_seed)
        held = []
        for cls in (False, True):
            idx = np.flatnonzero(carry == cls)
            held += list(rng.permutation(idx)[:int(round(held_out_fraction * len(idx)))])
        held = np.sort(np.array(held))
        train = np.setdiff1d(np.arange(len(ab)), held)
        (ans, am), (wr, wm) = encode(right), encode(wrong)
        return AdditionTask(torch.as_tensor(ab), ans, am, wr, wm, torch.as_tensor(carry),
                            torch.as_tensor(train), torch.as_tensor(held))

    def reward(self, idx: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """1.0 where the sampled answer (tokens, mask ``(N, 3)``) equals the right answer of
        prompt ``idx`` ``(N,)`` token for token, else 0.0."""
        same_mask = (mask == self.answer_mask[idx]).all(-1)
        same_tok = ((tokens == self.answers[idx]) | ~mask).all(-1)
        return (same_mask & same_tok).float()


# ---------------------------------------------------------------- the policy
class Policy(nn.Module):
    """GRU policy over answer tokens; with ``critic=True`` also a value head V(prefix)."""

    def __init__(self, emb: int = 32, hidden: int = 64, critic: bool = False):
        super().__init__()
        self.emb = nn.Embedding(12, emb)
        self.gru = nn.GRU(emb, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 11)
        self.value = nn.Linear(hidden, 1) if critic else None

    def _prompt_input(self, prompts: torch.Tensor) -> torch.Tensor:
        eq = torch.full((prompts.shape[0], 1), EQ, dtype=prompts.dtype)
        return torch.cat([prompts, eq], dim=1)  # (N, 3): a b =

    def teacher(self, prompts: torch.Tensor, tokens: torch.Tensor):
        """Log-probabilities ``(N, 3)`` of the given answer tokens (and values ``(N, 3)`` of the
        prefixes before each token, or None), one GRU pass over ``a b = y1 y2``."""
        x = torch.cat([self._prompt_input(prompts), tokens[:, :MAX_LEN - 1]], dim=1)
        h, _ = self.gru(self.emb(x))
        h = h[:, 2:]  # outputs after "=", y1, y2 predict y1, y2, y3
        logp = torch.log_softmax(self.head(h), dim=-1).gather(-1, tokens[..., None])[..., 0]
        v = self.value(h)[..., 0] if self.value is not None else None
        return logp, v

    @torch.no_grad()
    def generate(self, prompts: torch.Tensor, *, greedy: bool = False,
                 generator: torch.Generator | None = None):
        """Answers ``(N, 3)`` (EOS-padded) and their mask, all prompts at once, step by step."""
        out, h = self.gru(self.emb(self._prompt_input(prompts)))
        last = out[:, -1]
        N = prompts.shape[0]
        tokens = torch.full((N, MAX_LEN), EOS, dtype=torch.long)
        mask = torch.zeros((N, MAX_LEN), dtype=torch.bool)
        alive = torch.ones(N, dtype=torch.bool)
        for t in range(MAX_LEN):
            logits = self.head(last)
            tok = logits.argmax(-1) if greedy else \
                torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
            tokens[:, t] = torch.where(alive, tok, torch.full_like(tok, EOS))
            mask[:, t] = alive
            alive = alive & (tok != EOS)
            if t + 1 < MAX_LEN:
                o, h = self.gru(self.emb(tokens[:, t:t + 1]), h)
                last = o[:, -1]
        return tokens, mask


def success_rates(policy: Policy, task: AdditionTask, idx: torch.Tensor) -> float:
    r"""Mean over prompts ``idx`` of :math:`\pi(y^\star \mid x)`: the exact probability that
    a sampled answer is right."""
    with torch.no_grad():
        logp, _ = policy.teacher(task.prompts[idx], task.answers[idx])
        return float(torch.exp((logp * task.answer_mask[idx]).sum(-1)).mean())


def greedy_success(policy: Policy, task: AdditionTask, idx: torch.Tensor) -> float:
    """Fraction of prompts ``idx`` answered right by greedy decoding."""
    tok, mask = policy.generate(task.prompts[idx], greedy=True)
    return float(task.reward(idx, tok, mask).mean())


# ---------------------------------------------------------------- the reference
_REFERENCE_CACHE: dict = {}


def pretrain_reference(task: AdditionTask, *, forget_carry: float = 0.97, steps: int = 300,
                       lr: float = 1e-2, seed: int = 0) -> Policy:
    r"""Supervised pretraining on the corrupted targets (cached per arguments).

    Minimises the exact cross-entropy :math:`-\sum_x \sum_y q(y \mid x)\log\pi(y \mid x)`
    over all 81 prompts, with :math:`q` = the right answer, except on carry prompts where
    :math:`q` puts ``forget_carry`` on the answer without the carry. Full batch, Adam.
    """
    Vd.unit_interval("forget_carry", forget_carry)
    key = (id(task), forget_carry, steps, lr, seed)
    if key in _REFERENCE_CACHE:
        return copy.deepcopy(_REFERENCE_CACHE[key])
    torch.manual_seed(seed)
    pol = Policy()
    opt = torch.optim.Adam(pol.parameters(), lr=lr)
    q_wrong = forget_carry * task.carry.double()
    for _ in range(steps):
        lr_, _ = pol.teacher(task.prompts, task.answers)
        lw, _ = pol.teacher(task.prompts, task.wrong)
        ll_right = (lr_ * task.answer_mask).sum(-1)
        ll_wrong = (lw * task.wrong_mask).sum(-1)
        loss = -((1 - q_wrong) * ll_right + q_wrong * ll_wrong).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    pol.eval()
    _REFERENCE_CACHE[key] = copy.deepcopy(pol)
    return pol


# ---------------------------------------------------------------- training logs
@dataclass
class TrainLog:
    """Per evaluation: update step, training seconds (evaluations excluded), answers sampled,
    exact held-out and training success; ``reached`` = first step with held-out success
    >= target (None if never) and its seconds."""

    step: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    samples: list = field(default_factory=list)
    held_out: list = field(default_factory=list)
    train: list = field(default_factory=list)
    reached_step: int | None = None
    reached_seconds: float | None = None

    def record(self, step, seconds, samples, policy, task, target):
        self.step.append(step)
        self.seconds.append(seconds)
        self.samples.append(samples)
        self.held_out.append(success_rates(policy, task, task.held_out))
        self.train.append(success_rates(policy, task, task.train))
        if self.reached_step is None and self.held_out[-1] >= target:
            self.reached_step, self.reached_seconds = step, seconds

    def evaluate(self, step, seconds, samples, policy, task, cfg) -> bool:
        """Record every ``cfg.eval_every`` steps (and the last); True when training should stop
        (target reached with ``cfg.stop_at_target``, or ``cfg.max_seconds`` spent)."""
        if step % cfg.eval_every and step != cfg.max_steps:
            return False
        self.record(step, seconds, samples, policy, task, cfg.target)
        return (cfg.stop_at_target and self.reached_step is not None) or seconds > cfg.max_seconds


# ---------------------------------------------------------------- GRPO
@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """What both trainers share: optimiser, budget, stopping rule, evaluation, seed."""

    lr: float = 3e-3
    updates_per_batch: int = 2     # gradient steps on each batch (the ratio moves off 1)
    max_steps: int = 400
    max_seconds: float = 60.0
    target: float = 0.95
    stop_at_target: bool = True
    eval_every: int = 5
    seed: int = 0


@dataclass(frozen=True, kw_only=True)
class GRPOConfig(RunConfig):
    """GRPO hyperparameters; the variant is (``advantage``, ``ratio``, ``length_norm``, ``kl``)."""

    group_size: int = 8            # K answers per prompt
    prompts_per_step: int = 32     # B prompts per batch
    epsilon: float = 0.2
    beta: float = 0.0              # KL coefficient to the reference
    advantage: str = "mean"        # "mean" (notes), "std" (DeepSeekMath), "loo"
    ratio: str = "sequence"        # "sequence" (notes) or "token" (DeepSeekMath)
    length_norm: str | None = None  # with ratio="token": "sequence", "group", "constant"
    kl: str = "k3"

    def __post_init__(self):
        for name, allowed in (("advantage", ADVANTAGES), ("ratio", RATIOS), ("kl", KL_ESTIMATORS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.length_norm is not None and self.length_norm not in LENGTH_NORMS:
            raise ValueError(f"length_norm must be None or one of {LENGTH_NORMS}, got {self.length_norm!r}")
        Vd.positive("group_size", self.group_size, integer=True)
        if self.advantage != "mean" and self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 for advantage={self.advantage!r}, got {self.group_size}")
        Vd.positive("epsilon", self.epsilon)
        if not self.beta >= 0:
            raise ValueError(f"beta must be >= 0, got {self.beta!r}")


def train_grpo(task: AdditionTask, reference: Policy, cfg: GRPOConfig = GRPOConfig(), *,
               callback=None):
    """Train a copy of ``reference`` with GRPO; returns ``(policy, TrainLog)``.

    ``callback(step, max_steps)``, if given, runs after each update (the live widget's
    progress bar; it may raise to stop the run).
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    policy = copy.deepcopy(reference).train()
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    B, K = cfg.prompts_per_step, cfg.group_size
    log, clock = TrainLog(), 0.0
    log.record(0, 0.0, 0, policy, task, cfg.target)
    for step in range(1, cfg.max_steps + 1):
        t0 = time.perf_counter()
        # ---- rollout: B prompts, K answers each, one batched generation
        pick = torch.randint(len(task.train), (B,), generator=gen)
        idx = task.train[pick].repeat_interleave(K)  # (B*K,)
        prompts = task.prompts[idx]
        tokens, mask = policy.generate(prompts, generator=gen)
        r = task.reward(idx, tokens, mask).double().view(B, K)
        # ---- group advantages, old and reference log-probabilities
        adv = group_advantages(r, cfg.advantage).float()
        with torch.no_grad():
            logp_old = policy.teacher(prompts, tokens)[0].view(B, K, MAX_LEN)
            logp_ref = reference.teacher(prompts, tokens)[0].view(B, K, MAX_LEN) \
                if cfg.beta > 0 else None
        mask3 = mask.view(B, K, MAX_LEN)
        # ---- update: a few gradient steps on the GRPO objective
        for _ in range(cfg.updates_per_batch):
            logp = policy.teacher(prompts, tokens)[0].view(B, K, MAX_LEN)
            obj = grpo_objective(logp, logp_old, adv, mask3, epsilon=cfg.epsilon, ratio=cfg.ratio,
                                 length_norm=cfg.length_norm, beta=cfg.beta,
                                 logp_ref_t=logp_ref, kl=cfg.kl).mean()
            opt.zero_grad()
            (-obj).backward()
            opt.step()
        clock += time.perf_counter() - t0
        if log.evaluate(step, clock, step * B * K, policy, task, cfg):
            break
        if callback is not None:
            callback(step, cfg.max_steps)
    return policy.eval(), log


# ---------------------------------------------------------------- PPO with a critic
@dataclass(frozen=True, kw_only=True)
class PPOConfig(RunConfig):
    """PPO with a learned critic on the same task: token-level MDP, reward at the last token."""

    batch_size: int = 256          # answers per batch (as GRPO's B * K)
    epsilon: float = 0.2
    gamma: float = 1.0
    lam: float = 0.95
    value_coef: float = 0.5


def train_ppo(task: AdditionTask, reference: Policy, cfg: PPOConfig = PPOConfig()):
    """Train a copy of ``reference`` (plus a fresh value head) with PPO; ``(policy, TrainLog)``."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    policy = Policy(critic=True)
    policy.load_state_dict(reference.state_dict(), strict=False)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    N = cfg.batch_size
    log, clock = TrainLog(), 0.0
    log.record(0, 0.0, 0, policy, task, cfg.target)
    for step in range(1, cfg.max_steps + 1):
        t0 = time.perf_counter()
        # ---- rollout
        idx = task.train[torch.randint(len(task.train), (N,), generator=gen)]
        prompts = task.prompts[idx]
        tokens, mask = policy.generate(prompts, generator=gen)
        r = task.reward(idx, tokens, mask)
        # ---- advantages: GAE over the answer tokens, time-major (T, N); the answer ends at
        #      its last token (terminated), with the reward there
        with torch.no_grad():
            logp_old, v_old = policy.teacher(prompts, tokens)
        length = mask.sum(-1)
        last = torch.nn.functional.one_hot(length - 1, MAX_LEN).bool()
        r_t = (last * r[:, None]).T.numpy().astype(np.float64)
        term_t = (last | ~mask).T.numpy()
        a_t = gae(r_t, v_old.T.numpy().astype(np.float64), v_T=np.zeros(N), terminated_t=term_t,
                  truncated_t=np.zeros_like(term_t), gamma=cfg.gamma, lam=cfg.lam)
        adv = torch.as_tensor(a_t.T, dtype=torch.float32)
        ret = adv + v_old
        m = mask.float()
        a_valid = adv[mask]
        adv = (adv - a_valid.mean()) / (a_valid.std() + 1e-8)  # per-batch normalisation
        # ---- update: clipped surrogate per token + value loss
        for _ in range(cfg.updates_per_batch):
            logp, v = policy.teacher(prompts, tokens)
            pg = clipped_surrogate(torch.exp(logp - logp_old), adv, cfg.epsilon)
            loss = -(pg * m).sum() / m.sum() + cfg.value_coef * (value_loss(v, ret) * m).sum() / m.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        clock += time.perf_counter() - t0
        if log.evaluate(step, clock, step * N, policy, task, cfg):
            break
    return policy.eval(), log


# ---------------------------------------------------------------- the chapter's experiments
VARIANTS = {
    "notes (mean, sequence ratio)": {},
    "leave-one-out": {"advantage": "loo"},
    "token ratio, 1/|y_i| (DeepSeekMath loss)": {"ratio": "token", "length_norm": "sequence"},
    "token ratio, 1/sum|y| (per token of group)": {"ratio": "token", "length_norm": "group"},
    "Dr. GRPO (token ratio, 1/(K L))": {"ratio": "token", "length_norm": "constant"},
    "DeepSeekMath (std, 1/|y_i|, k3, beta=0.04)": {"advantage": "std", "ratio": "token",
                                                  "length_norm": "sequence", "beta": 0.04},
}


def book_task():
    """The chapter's task and its (cached) reference policy."""
    task = _TASK.setdefault("task", AdditionTask.make())
    return task, pretrain_reference(task)


_TASK: dict = {}


def run_seeds(seeds=(0, 1, 2), **overrides):
    """GRPO (defaults of :class:`GRPOConfig` plus ``overrides``) from the book's reference, one
    run per seed, each stopped at the target or after ``max_seconds``: ``{seed: TrainLog}``."""
    task, ref = book_task()
    return {s: train_grpo(task, ref, GRPOConfig(seed=s, **overrides))[1] for s in seeds}


def run_variants(steps: int = 80, seed: int = 0, variants=None):
    """Each GRPO variant of :data:`VARIANTS` and PPO with a critic, ``steps`` updates of 256
    answers each (no early stop): ``{name: TrainLog}``."""
    task, ref = book_task()
    out = {name: train_grpo(task, ref, GRPOConfig(seed=seed, max_steps=steps,
                                                  stop_at_target=False, **kw))[1]
           for name, kw in (variants or VARIANTS).items()}
    out["PPO with a critic (GAE)"] = train_ppo(task, ref, PPOConfig(seed=seed, max_steps=steps,
                                                                    stop_at_target=False))[1]
    return out


def run_grid(epsilons=(0.1, 0.2, 0.3), betas=(0.0, 0.04, 0.2), ks=(2, 4, 8, 16),
             steps: int = 60, seed: int = 0):
    """The chapter's slider data: ``{(epsilon, beta, K): TrainLog}`` over the epsilon x beta grid
    at K = 8 and over ``ks`` at epsilon 0.2, beta 0; ``steps`` updates each, no early stop."""
    task, ref = book_task()
    settings = [(e, b, 8) for e in epsilons for b in betas] + [(0.2, 0.0, k) for k in ks]
    out = {}
    for e, b, k in settings:
        if (e, b, k) not in out:
            out[(e, b, k)] = train_grpo(task, ref, GRPOConfig(
                seed=seed, epsilon=e, beta=b, group_size=k, max_steps=steps,
                stop_at_target=False))[1]
    return out
