r"""A small task with a verifiable reward and the GRU policy that answers it (chapter 14).

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
token; :func:`sample_answers` generates all answers of a batch in one loop over the (at most 3)
answer steps. Success rates are exact: :math:`\pi(y^\star \mid x)` by teacher forcing of the
right answer, averaged over the prompts (the probability that a *sampled* answer is right).

What the two trainers on this task share (:func:`rlviz.agents.grpo.train_grpo`,
:func:`rlviz.agents.token_ppo.train_ppo`) is here too: the rollout (:func:`sample_answers`), the
optimiser step (:func:`gradient_step`), the settings common to both (:class:`RunConfig`) and
the evaluation log (:class:`TrainLog`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from rlviz import _validate as validate

__all__ = [
    "EOS",
    "EQ",
    "MAX_LEN",
    "VOCAB",
    "ANSWER_VOCAB",
    "AdditionTask",
    "Policy",
    "Rollout",
    "sample_answers",
    "success_rates",
    "greedy_success",
    "held_out_entropy",
    "pretrain_reference",
    "gradient_step",
    "RunConfig",
    "TrainLog",
]

EOS, EQ = 10, 11  # token ids: digits 0-9, then EOS and "="
VOCAB = 12  # tokens the policy reads: digits, EOS, "="
ANSWER_VOCAB = EOS + 1  # tokens it writes: digits and EOS
MAX_LEN = 3  # answer tokens at most: two digits and EOS


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
    def make(held_out_fraction: float = 0.25, split_seed: int = 0) -> AdditionTask:
        """All 81 prompts; ``held_out_fraction`` of the carry and of the no-carry prompts
        (rounded) held out, chosen by ``split_seed``."""
        held_out_fraction = validate.unit_interval("held_out_fraction", held_out_fraction)
        ab = np.array([(a, b) for a in range(1, 10) for b in range(1, 10)])
        total = ab.sum(1)
        carry = total >= 10
        right = [[1, s - 10] if s >= 10 else [s] for s in total]
        wrong = [[s - 10] if s >= 10 else [s] for s in total]
        rng = np.random.default_rng(split_seed)
        held = []
        for has_carry in (False, True):
            idx = np.flatnonzero(carry == has_carry)
            held += list(rng.permutation(idx)[: int(round(held_out_fraction * len(idx)))])
        held = np.sort(np.array(held, dtype=np.int64))
        train = np.setdiff1d(np.arange(len(ab)), held)
        (ans, ans_mask), (wr, wr_mask) = _encode(right), _encode(wrong)
        return AdditionTask(
            torch.as_tensor(ab),
            ans,
            ans_mask,
            wr,
            wr_mask,
            torch.as_tensor(carry),
            torch.as_tensor(train),
            torch.as_tensor(held),
        )

    def reward(self, idx: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """1.0 where the sampled answer (tokens, mask ``(N, 3)``) equals the right answer of
        prompt ``idx`` ``(N,)`` token for token, else 0.0."""
        same_mask = (mask == self.answer_mask[idx]).all(-1)
        same_tok = ((tokens == self.answers[idx]) | ~mask).all(-1)
        return (same_mask & same_tok).float()


def _encode(digit_lists) -> tuple[torch.Tensor, torch.Tensor]:
    """Answers as tokens ``(N, MAX_LEN)`` (the digits, EOS, EOS-padded) and their mask."""
    tokens = np.full((len(digit_lists), MAX_LEN), EOS)
    mask = np.zeros((len(digit_lists), MAX_LEN), dtype=bool)
    for row, digits in enumerate(digit_lists):
        seq = list(digits) + [EOS]
        tokens[row, : len(seq)] = seq
        mask[row, : len(seq)] = True
    return torch.as_tensor(tokens), torch.as_tensor(mask)


# ---------------------------------------------------------------- the policy
class Policy(nn.Module):
    """GRU policy over answer tokens; with ``critic=True`` also a value head V(prefix)."""

    def __init__(self, emb: int = 32, hidden: int = 64, critic: bool = False):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, emb)
        self.gru = nn.GRU(emb, hidden, batch_first=True)
        self.head = nn.Linear(hidden, ANSWER_VOCAB)
        self.value = nn.Linear(hidden, 1) if critic else None

    def _prompt_input(self, prompts: torch.Tensor) -> torch.Tensor:
        eq = torch.full((prompts.shape[0], 1), EQ, dtype=prompts.dtype)
        return torch.cat([prompts, eq], dim=1)  # (N, 3): a b =

    def next_token_logits(self, prompts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 3, ANSWER_VOCAB)`` of the next token after ``a b =`` and each prefix of
        the given answers (the distributions :meth:`teacher` reads its log-probabilities from)."""
        x = torch.cat([self._prompt_input(prompts), tokens[:, : MAX_LEN - 1]], dim=1)
        h, _ = self.gru(self.emb(x))
        return self.head(h[:, 2:])

    def teacher(self, prompts: torch.Tensor, tokens: torch.Tensor, logit_bias=None):
        """Log-probabilities ``(N, 3)`` of the given answer tokens (and values ``(N, 3)`` of the
        prefixes before each token, or None), one GRU pass over ``a b = y1 y2``.

        ``logit_bias`` ``(MAX_LEN, ANSWER_VOCAB)``, if given, is added to the logits of answer
        position ``t`` (the perturbed sampler of chapter 17, as :meth:`generate` samples it)."""
        x = torch.cat([self._prompt_input(prompts), tokens[:, : MAX_LEN - 1]], dim=1)
        h, _ = self.gru(self.emb(x))
        h = h[:, 2:]  # outputs after "=", y1, y2 predict y1, y2, y3
        logits = self.head(h) if logit_bias is None else self.head(h) + logit_bias
        logp = torch.log_softmax(logits, dim=-1).gather(-1, tokens[..., None])[..., 0]
        v = self.value(h)[..., 0] if self.value is not None else None
        return logp, v

    @torch.no_grad()
    def generate(
        self,
        prompts: torch.Tensor,
        *,
        greedy: bool = False,
        generator: torch.Generator | None = None,
        logit_bias: torch.Tensor | None = None,
    ):
        """Answers ``(N, 3)`` (EOS-padded) and their mask, all prompts at once, step by step.

        ``logit_bias`` ``(MAX_LEN, ANSWER_VOCAB)``, if given, is added to the logits of answer
        position ``t``: the answers then come from a sampler that is not this policy
        (chapter 17; :meth:`teacher` with the same bias gives the sampler's log-probabilities)."""
        if logit_bias is not None and tuple(logit_bias.shape) != (MAX_LEN, ANSWER_VOCAB):
            raise ValueError(
                f"logit_bias must have shape (MAX_LEN, ANSWER_VOCAB) = {(MAX_LEN, ANSWER_VOCAB)}, "
                f"got {tuple(logit_bias.shape)}"
            )
        out, h = self.gru(self.emb(self._prompt_input(prompts)))
        last = out[:, -1]
        n = prompts.shape[0]
        tokens = torch.full((n, MAX_LEN), EOS, dtype=torch.long)
        mask = torch.zeros((n, MAX_LEN), dtype=torch.bool)
        alive = torch.ones(n, dtype=torch.bool)
        for t in range(MAX_LEN):
            logits = self.head(last) if logit_bias is None else self.head(last) + logit_bias[t]
            tok = (
                logits.argmax(-1)
                if greedy
                else torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
            )
            tokens[:, t] = torch.where(alive, tok, torch.full_like(tok, EOS))
            mask[:, t] = alive
            alive = alive & (tok != EOS)
            if t + 1 < MAX_LEN:
                o, h = self.gru(self.emb(tokens[:, t : t + 1]), h)
                last = o[:, -1]
        return tokens, mask


# ---------------------------------------------------------------- rollout and evaluation
@dataclass(frozen=True)
class Rollout:
    """Sampled answers: prompt indices ``idx`` ``(N,)``, ``prompts`` ``(N, 2)``, answer
    ``tokens`` and ``mask`` ``(N, MAX_LEN)``, ``rewards`` ``(N,)`` (1.0 right, 0.0 wrong)."""

    idx: torch.Tensor
    prompts: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor
    rewards: torch.Tensor


def sample_answers(
    policy: Policy,
    task: AdditionTask,
    n_prompts: int,
    group_size: int,
    generator: torch.Generator,
    logit_bias: torch.Tensor | None = None,
) -> Rollout:
    """``n_prompts`` RL-training prompts drawn uniformly (with replacement), ``group_size``
    answers sampled for each, all in one batched generation. Rows are prompt-major: the
    ``group_size`` answers of a prompt are consecutive, ``N = n_prompts * group_size``.
    ``logit_bias``: sample from the perturbed policy of :meth:`Policy.generate` instead."""
    pick = torch.randint(len(task.train), (n_prompts,), generator=generator)
    idx = task.train[pick].repeat_interleave(group_size)
    prompts = task.prompts[idx]
    tokens, mask = policy.generate(prompts, generator=generator, logit_bias=logit_bias)
    return Rollout(idx, prompts, tokens, mask, task.reward(idx, tokens, mask))


def success_rates(policy: Policy, task: AdditionTask, idx: torch.Tensor) -> float:
    r"""Mean over prompts ``idx`` of :math:`\pi(y^\star \mid x)`: the exact probability that
    a sampled answer is right."""
    with torch.no_grad():
        logp, _ = policy.teacher(task.prompts[idx], task.answers[idx])
        return float(torch.exp((logp * task.answer_mask[idx]).sum(-1)).mean())


def held_out_entropy(policy: Policy, task: AdditionTask) -> float:
    r"""Mean entropy (nats) of the policy's next-token distributions along the right answers of
    the held-out prompts (one teacher-forced pass; the prefixes :math:`y^\star_{<t}`, every
    answer token): how spread out the policy still is where it matters. Exact, no sampling."""
    idx = task.held_out
    with torch.no_grad():
        logits = policy.next_token_logits(task.prompts[idx], task.answers[idx])
        logp = torch.log_softmax(logits, dim=-1)
        h = -(logp.exp() * logp).sum(-1)
        m = task.answer_mask[idx].float()
        return float((h * m).sum() / m.sum())


def greedy_success(policy: Policy, task: AdditionTask, idx: torch.Tensor) -> float:
    """Fraction of prompts ``idx`` answered right by greedy decoding."""
    tok, mask = policy.generate(task.prompts[idx], greedy=True)
    return float(task.reward(idx, tok, mask).mean())


# ---------------------------------------------------------------- the reference
_REFERENCE_CACHE: dict = {}


def pretrain_reference(
    task: AdditionTask,
    *,
    forget_carry: float = 0.97,
    steps: int = 300,
    lr: float = 1e-2,
    seed: int = 0,
) -> Policy:
    r"""Supervised pretraining on the corrupted targets (cached per task and arguments).

    Minimises the exact cross-entropy :math:`-\sum_x \sum_y q(y \mid x)\log\pi(y \mid x)`
    over all 81 prompts, with :math:`q` = the right answer, except on carry prompts where
    :math:`q` puts ``forget_carry`` on the answer without the carry. Full batch, Adam with
    learning rate ``lr``, ``steps`` steps, initial weights from ``seed``. Returns a copy.
    """
    forget_carry = validate.unit_interval("forget_carry", forget_carry)
    steps = validate.positive("steps", steps, integer=True)
    lr = validate.positive("lr", lr)
    key = (id(task), forget_carry, steps, lr, seed)
    cached = _REFERENCE_CACHE.get(key)
    if cached is not None and cached[0] is task:  # the task is kept, so its id is not reused
        return copy.deepcopy(cached[1])
    torch.manual_seed(seed)
    policy = Policy()
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    q_wrong = forget_carry * task.carry.double()
    for _ in range(steps):
        logp_right, _ = policy.teacher(task.prompts, task.answers)
        logp_wrong, _ = policy.teacher(task.prompts, task.wrong)
        ll_right = (logp_right * task.answer_mask).sum(-1)
        ll_wrong = (logp_wrong * task.wrong_mask).sum(-1)
        loss = -((1 - q_wrong) * ll_right + q_wrong * ll_wrong).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    policy.eval()
    _REFERENCE_CACHE[key] = (task, copy.deepcopy(policy))
    return policy


# ---------------------------------------------------------------- what both trainers share
def gradient_step(
    optimizer: torch.optim.Optimizer, loss: torch.Tensor, *, trainer: str, step: int
) -> None:
    """One optimiser step that minimises ``loss`` (a scalar). A loss that is not finite raises
    ``FloatingPointError`` naming the trainer and the update, before any weight changes."""
    if not bool(torch.isfinite(loss)):
        raise FloatingPointError(
            f"{trainer} update {step}: loss is not finite ({float(loss.detach())})"
        )
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """What both trainers share: optimiser, budget, stopping rule, evaluation, seed.

    Each field is checked when the config is made (``ValueError`` naming it)."""

    lr: float = 3e-3  # Adam's learning rate, > 0
    updates_per_batch: int = 2  # gradient steps on each batch (the ratio moves off 1), >= 1
    max_steps: int = 400  # batches at most, >= 1
    max_seconds: float = 60.0  # training seconds at most (evaluations excluded), > 0 or inf
    target: float = 0.95  # held-out success that counts as reached, in [0, 1]
    stop_at_target: bool = True
    eval_every: int = 5  # evaluate every this many batches (and after the last), >= 1
    seed: int = 0  # >= 0

    def __post_init__(self):
        validate.positive("lr", self.lr)
        validate.integer("updates_per_batch", self.updates_per_batch, minimum=1)
        validate.integer("max_steps", self.max_steps, minimum=1)
        validate.real("max_seconds", self.max_seconds)
        validate.positive("max_seconds", self.max_seconds, inf_ok=True)
        validate.unit_interval("target", self.target)
        validate.boolean("stop_at_target", self.stop_at_target)
        validate.integer("eval_every", self.eval_every, minimum=1)
        validate.integer("seed", self.seed, minimum=0)


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
    entropy: list = field(default_factory=list)  # held-out_entropy(), per evaluation
    reached_step: int | None = None
    reached_seconds: float | None = None
    capped: float | None = None  # chapter 17: fraction of answer tokens whose weight was capped

    def record(self, step, seconds, samples, policy, task, target):
        self.step.append(step)
        self.seconds.append(seconds)
        self.samples.append(samples)
        self.held_out.append(success_rates(policy, task, task.held_out))
        self.train.append(success_rates(policy, task, task.train))
        self.entropy.append(held_out_entropy(policy, task))
        if self.reached_step is None and self.held_out[-1] >= target:
            self.reached_step, self.reached_seconds = step, seconds

    def evaluate(self, step, seconds, samples, policy, task, cfg: RunConfig) -> bool:
        """Record every ``cfg.eval_every`` steps (and the last); True when training should stop
        (target reached with ``cfg.stop_at_target``, or ``cfg.max_seconds`` spent)."""
        if step % cfg.eval_every and step != cfg.max_steps:
            return False
        self.record(step, seconds, samples, policy, task, cfg.target)
        return (cfg.stop_at_target and self.reached_step is not None) or seconds > cfg.max_seconds
