"""rlviz's GRPO functions against TRL's ``GRPOTrainer``, on the same float64 tensors.

The trainer is real: built from a ``GRPOConfig`` on a tiny randomly initialised Llama (2
layers, hidden size 16, float64) and a word-level tokenizer made in memory (no download).

(saved to a temporary folder, from which the trainer loads the policy and its reference
model: no download).

* The loss: ``GRPOTrainer._compute_loss`` (what ``compute_loss`` calls) runs unchanged on
  given inputs (advantages, old and reference log-probabilities, completion mask); only the
  model's forward pass, ``_get_per_token_logps_and_entropies``, is replaced on the instance
  by one returning the test's log-probabilities (a leaf tensor), so the loss is TRL's code on
  the test's tensors and its gradient is compared too. Every ``loss_type`` rlviz has a formula
  for (grpo, bnpo, dr_grpo, dapo, cispo, luspo) x ``importance_sampling_level`` (token,
  sequence) x ``beta`` (0, 0.04, TRL's k3) x clip (symmetric, clip-higher).
* The advantages and the importance-sampling correction:
  ``GRPOTrainer._generate_and_score_completions`` runs unchanged (the model scores the
  completions, the reward function returns the test's rewards); generation goes through
  TRL's ``rollout_func`` hook, which returns fixed completions and the sampler's
  log-probabilities. ``scale_rewards`` in (group, batch, none); ``vllm_importance_sampling_mode``
  in (token_truncate, token_mask, sequence_truncate, sequence_mask): TRL computes this ratio
  only when ``use_vllm`` is on, so the test turns ``use_vllm`` on *after* construction (vLLM
  is not installed; the rollout hook replaces it).

Pinned differences: TRL's ``cispo`` clips the ratio at ``epsilon_high`` itself, with no lower
clip (rlviz's ``cispo_surrogate`` takes widths: ``eps_high = epsilon_high - 1`` and a lower
width that never binds); TRL's ``dr_grpo`` divides by ``max_completion_length`` (rlviz's
``norm``).
"""

from __future__ import annotations

import functools

import pytest
import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from trl import GRPOConfig, GRPOTrainer

from rlviz.fn import grpo_aggregation as agg
from rlviz.fn import grpo_loss as gl
from rlviz.fn import offpolicy as op
from rlviz.fn import ratios as rt
from rlviz.fn.grpo_practice import REGISTRIES, practice_objective
from rlviz.fn.registry import NotInLibrary

LIB = "TRL"
WORDS = ["<pad>", "<eos>", "<bos>", "<unk>"] + [chr(ord("a") + i) for i in range(12)]
B, G, L = 3, 4, 7  # the batch of conftest.make_batch
TOL32 = 1e-6  # for what TRL computes in float32 (advantages, the vLLM IS ratio)


def tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
    )


def tiny_model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(WORDS),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    return LlamaForCausalLM(cfg).to(torch.float64)


class Rewards:
    """A reward function returning preset rewards, in the order TRL scores the batch."""

    __name__ = "preset"

    def __init__(self):
        self.values: list[float] = []

    def __call__(self, prompts, completions, **kwargs):
        assert len(completions) == len(self.values)
        return list(self.values)


@functools.cache
def saved_model(tmp: str) -> str:
    """The tiny model and its tokenizer saved to a local folder: GRPOTrainer loads the policy
    and (when beta > 0) builds its reference model from this path, no download."""
    path = f"{tmp}/tiny-llama"
    tiny_model().save_pretrained(path)
    tokenizer().save_pretrained(path)
    return path


@functools.cache
def trainer(tmp: str, **kw) -> GRPOTrainer:
    args = GRPOConfig(
        output_dir=f"{tmp}/out",
        report_to="none",
        use_cpu=True,
        bf16=False,
        fp16=False,
        per_device_train_batch_size=B * G,
        num_generations=G,
        max_completion_length=L,
        logging_steps=1,
        save_strategy="no",
        seed=0,
        model_init_kwargs={"dtype": torch.float64},
        **kw,
    )
    data = Dataset.from_dict({"prompt": ["a b", "c d", "e f"]})
    path = saved_model(tmp)
    t = GRPOTrainer(
        model=path,
        reward_funcs=Rewards(),
        args=args,
        train_dataset=data,
        processing_class=PreTrainedTokenizerFast.from_pretrained(path),
        rollout_func=_rollout,
    )
    assert t.model.dtype == torch.float64
    t.current_gradient_accumulation_steps = 1
    t.model.train()
    return t


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("trl"))


# ---------------------------------------------------------------- the loss
def trl_loss(t: GRPOTrainer, b, adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """TRL's _compute_loss on the batch, the current log-probs ``x`` (flat, a leaf)."""
    bs = b.B * b.G
    inputs = {
        "prompt_ids": torch.full((bs, 2), 4, dtype=torch.long),
        "prompt_mask": torch.ones(bs, 2, dtype=torch.long),
        "completion_ids": torch.full((bs, L), 5, dtype=torch.long),
        "completion_mask": b.flat(b.mask_t).long(),
        "advantages": b.flat(adv),
        "old_per_token_logps": b.flat(b.logp_old_t),
        "ref_per_token_logps": b.flat(b.logp_ref_t),
        "num_items_in_batch": b.mask_t.sum(),
    }
    t._get_per_token_logps_and_entropies = lambda *a, **k: (x, torch.zeros_like(x), None)
    try:
        return t._compute_loss(t.model, inputs)
    finally:
        del t._get_per_token_logps_and_entropies


def leaves(b) -> tuple[torch.Tensor, torch.Tensor]:
    """Two leaves of the batch's current log-probabilities: TRL's flat ``(B*G, L)`` and
    rlviz's ``(B, G, L)``."""
    return b.flat(b.logp_t).clone().requires_grad_(True), b.logp_t.clone().requires_grad_(True)


def assert_grads_close(assert_close, b, pair, case, ours, x_ours, theirs, x_theirs):
    """The gradients of both losses with respect to their own leaf, in TRL's flat shape."""
    (g_t,) = torch.autograd.grad(theirs, x_theirs)
    (g_o,) = torch.autograd.grad(ours, x_ours)
    assert_close(LIB, pair, case, b.flat(g_o), g_t)


# loss_type -> rlviz's aggregation mode (and norm)
AGG = {
    "grpo": ("seq-mean-token-mean", {}),
    "bnpo": ("token-mean", {}),
    "dr_grpo": ("seq-mean-token-sum-norm", {"norm": L}),  # max_completion_length
    "dapo": ("token-mean", {}),  # num_items_in_batch = the batch's tokens
    "luspo": ("seq-mean-token-sum", {}),
}
CLIPS = [(0.2, None), (0.2, 0.28)]


def rlviz_loss(b, adv, x, loss_type, level, beta, eps_low, eps_high, bias_kl=False):
    """The same loss from rlviz's functions, to minimise. ``bias_kl``: TRL's
    use_bias_correction_kl, k3 times the (differentiated) ratio of the IS level."""
    adv_t = adv[..., None].expand(b.mask_t.shape)
    if loss_type == "cispo":
        rho = None
        if level == "token":
            per_tok = rt.cispo_surrogate(x, b.logp_old_t, adv_t, 0.99, eps_high - 1)
        else:  # one weight per answer: clip(s_i) sg, times A log pi of every token
            s = rt.gspo_ratios(x, b.logp_old_t, b.mask_t).detach()
            w = torch.clamp(s, max=eps_high)[..., None]
            per_tok = w * adv_t * x
        mode, kw = "token-mean", {}
    else:
        mode, kw = AGG[loss_type]
        if level == "token":
            rho = gl.token_ratios(x, b.logp_old_t, b.mask_t)
            per_tok = rt.asymmetric_clipped_surrogate(rho, adv_t, eps_low, eps_high)
        else:
            s = rt.gspo_ratios(x, b.logp_old_t, b.mask_t)
            per_tok = rt.asymmetric_clipped_surrogate(s, adv, eps_low, eps_high)[..., None].expand(
                b.mask_t.shape
            )
    if beta:
        k_t = gl.kl_k3(x, b.logp_ref_t)
        if bias_kl and level == "token":
            k_t = k_t * gl.token_ratios(x, b.logp_old_t, b.mask_t)
        elif bias_kl:
            k_t = k_t * rt.gspo_ratios(x, b.logp_old_t, b.mask_t)[..., None]
        per_tok = per_tok - beta * k_t
    return -agg.aggregate(per_tok, b.mask_t, mode, **kw)


LOSS_CASES = [
    (loss_type, level)
    for loss_type in ("grpo", "bnpo", "dr_grpo", "dapo", "cispo")
    for level in ("token", "sequence")
    # TRL warns that sequence-level IS with a token-summing loss is not GSPO's objective
    if level == "token" or loss_type == "grpo"
] + [("luspo", "sequence")]  # LUSPO is meant with sequence-level IS


@pytest.mark.parametrize("eps", CLIPS, ids=["sym", "clip-higher"])
@pytest.mark.parametrize("beta", [0.0, 0.04, "0.04-is"])
@pytest.mark.parametrize("loss_type, level", LOSS_CASES)
def test_loss(tmp, loss_type, level, beta, eps, assert_close, make_batch):
    """beta "0.04-is": TRL's default use_bias_correction_kl=True (k3 times the ratio); 0.04:
    plain k3 (use_bias_correction_kl=False). For cispo, epsilon_high is TRL's cap on the ratio
    (1.3, binding, or 5)."""
    bias_kl = beta == "0.04-is"
    beta = 0.04 if bias_kl else beta
    eps_low, eps_high = eps
    if loss_type == "cispo":
        eps_high = 1.3 if eps_high is None else 5.0
    if eps_high is None:
        eps_high = eps_low
    t = trainer(
        tmp,
        loss_type=loss_type,
        importance_sampling_level=level,
        beta=beta,
        epsilon=eps_low,
        epsilon_high=eps_high,
        use_bias_correction_kl=bias_kl,
    )
    b = make_batch(0)
    adv = gl.group_advantages(b.r, "std")
    x_theirs, x_ours = leaves(b)
    theirs = trl_loss(t, b, adv, x_theirs)
    ours = rlviz_loss(b, adv, x_ours, loss_type, level, beta, eps_low, eps_high, bias_kl)
    kl = (" (k3 x ratio)" if bias_kl else " (k3)") if beta else ""
    case = f"{loss_type}, {level}, beta={beta}{kl}, eps=({eps_low}, {eps_high})"
    assert_close(LIB, "GRPOTrainer._compute_loss ~ rlviz loss", case, ours, theirs)
    assert_grads_close(
        assert_close,
        b,
        "grad GRPOTrainer._compute_loss ~ grad rlviz loss",
        case,
        ours,
        x_ours,
        theirs,
        x_theirs,
    )


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_loss_vs_grpo_objective(tmp, beta, assert_close, make_batch):
    """Chapter 14's grpo_objective(ratio="token", length_norm="sequence", kl="k3") is TRL's
    default loss_type="grpo" (DeepSeekMath's objective)."""
    t = trainer(
        tmp,
        loss_type="grpo",
        importance_sampling_level="token",
        beta=beta,
        epsilon=0.2,
        use_bias_correction_kl=False,
    )
    b = make_batch(0)
    adv = gl.group_advantages(b.r, "std")
    x_theirs, x_ours = leaves(b)
    theirs = trl_loss(t, b, adv, x_theirs)
    obj = gl.grpo_objective(
        x_ours,
        b.logp_old_t,
        adv,
        b.mask_t,
        epsilon=0.2,
        ratio="token",
        length_norm="sequence",
        beta=beta,
        logp_ref_t=b.logp_ref_t,
        kl="k3",
    )
    ours = -obj.mean()
    assert_close(
        LIB, "GRPOTrainer._compute_loss ~ grpo_objective", f"grpo, beta={beta}", ours, theirs
    )
    assert_grads_close(
        assert_close,
        b,
        "grad GRPOTrainer._compute_loss ~ grad grpo_objective",
        f"grpo, beta={beta}",
        ours,
        x_ours,
        theirs,
        x_theirs,
    )


# ---------------------------------------------------------------- advantages and IS ratio
_ROLLOUT: dict = {}


def _rollout(prompts, trainer):
    """TRL's rollout_func hook: fixed completions (the batch's lengths, eos-free tokens) and the
    sampler's per-token log-probabilities."""
    return {
        "prompt_ids": [[4, 5]] * len(prompts),
        "completion_ids": _ROLLOUT["completion_ids"],
        "logprobs": _ROLLOUT["logprobs"],
    }


def generate(t: GRPOTrainer, b, sampler_logp_t: torch.Tensor | None = None) -> dict:
    lengths = b.mask_t.sum(-1).flatten().tolist()
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(4, len(WORDS), (b.B * b.G, L), generator=g)
    _ROLLOUT["completion_ids"] = [ids[k, :n].tolist() for k, n in enumerate(lengths)]
    if sampler_logp_t is None:
        sampler_logp_t = torch.full(b.mask_t.shape, -1.0, dtype=torch.float64)
    flat = b.flat(sampler_logp_t)
    _ROLLOUT["logprobs"] = [flat[k, :n].tolist() for k, n in enumerate(lengths)]
    t.reward_funcs[0].values = b.flat(b.r).tolist()
    prompts = [{"prompt": p} for p in ["a b", "c d", "e f"] for _ in range(b.G)]
    return t._generate_and_score_completions(prompts)


TRL_ADVANTAGES = {"std": "group", "batch-std": "batch", "mean": "none"}  # -> scale_rewards


@pytest.mark.parametrize("kind", list(TRL_ADVANTAGES))
def test_advantages(tmp, kind, assert_close, make_batch):
    """TRL keeps rewards and advantages in float32 (rewards_per_func): rlviz gets the same
    float32 rewards and computes in float32; compared to TOL32."""
    scale = TRL_ADVANTAGES[kind]
    t = trainer(tmp, scale_rewards=scale)
    b = make_batch(0)
    out = generate(t, b)
    assert out["advantages"].dtype == torch.float32
    r32 = b.r.to(torch.float32)
    case = f"scale_rewards={scale}, float32"
    ours = gl.group_advantages(r32, kind, std_eps=1e-4)
    assert_close(
        LIB,
        "GRPOTrainer advantages ~ group_advantages",
        case,
        b.flat(ours),
        out["advantages"],
        TOL32,
    )


MODES_IS = {
    "token_truncate": ("tis", "token"),
    "token_mask": ("mis", "token"),
    "sequence_truncate": ("tis", "sequence"),
    "sequence_mask": ("mis", "sequence"),
}


@pytest.mark.parametrize("cap", [1.1, 1.3])
@pytest.mark.parametrize("is_mode", list(MODES_IS))
def test_importance_sampling_ratio(tmp, is_mode, cap, assert_close, make_batch):
    """TRL's vLLM importance-sampling correction: the ratio of the trainer's old log-probs (the
    tiny model's) to the sampler's. TRL holds both in float32 (the model's fused log-prob head,
    the sampler's list of floats): rlviz gets the same float32 tensors; compared to TOL32."""
    t = trainer(
        tmp,
        vllm_importance_sampling_mode=is_mode,
        vllm_importance_sampling_clip_max=cap,
        vllm_importance_sampling_correction=True,
    )
    t.use_vllm = True  # after construction: no vLLM engine, the rollout hook generates
    t._last_loaded_step = t.state.global_step
    b = make_batch(0)
    out = generate(t, b)  # a first pass gives the model's log-probs of the completions
    old = b.unflat(out["old_per_token_logps"])
    g = torch.Generator().manual_seed(12)
    noise = 0.4 * (2 * torch.rand(old.shape, generator=g, dtype=torch.float64) - 1)
    mu = (old.double() + noise).to(torch.float32)  # the sampler: within 0.4 of the learner
    out = generate(t, b, mu)
    assert out["old_per_token_logps"].dtype == torch.float32
    assert torch.equal(b.unflat(out["old_per_token_logps"]), old)
    correction, level = MODES_IS[is_mode]
    ours = op.correction_weights(old, mu, b.mask_t, correction, level, cap)
    if level == "sequence":  # TRL keeps one weight per answer, (bs, 1)
        ours = ours[..., :1]
    theirs = out["importance_sampling_ratio"]
    w = ours[b.mask_t[..., : ours.shape[-1]]]
    assert bool((w == 0).any() if correction == "mis" else (w == cap).any())  # the cap binds
    case = f"{is_mode}, C={cap}, float32"
    assert_close(
        LIB,
        "GRPOTrainer importance_sampling_ratio ~ correction_weights",
        case,
        b.flat(ours),
        theirs,
        TOL32,
    )


# ---------------------------------------------------------------- negative control
def test_negative_control_dropped_normaliser(tmp, monkeypatch, make_batch):
    """The comparison sees a perturbed rlviz loss: with chapter 14's length_normalised made to
    forget the 1/|y_i| of DeepSeekMath's per-answer token mean, grpo_objective no longer
    matches TRL's loss_type="grpo" (value and gradient)."""
    t = trainer(
        tmp,
        loss_type="grpo",
        importance_sampling_level="token",
        beta=0.0,
        epsilon=0.2,
        use_bias_correction_kl=False,
    )
    b = make_batch(0)
    adv = gl.group_advantages(b.r, "std")
    x = b.flat(b.logp_t).clone().requires_grad_(True)
    theirs = trl_loss(t, b, adv, x)
    right = gl.length_normalised

    def dropped(x_t, mask_t, norm):  # the bug: sum the tokens instead of averaging them
        if norm == "sequence":
            return (x_t * mask_t).sum(-1).mean(1)
        return right(x_t, mask_t, norm)

    monkeypatch.setattr(gl, "length_normalised", dropped)
    obj = gl.grpo_objective(b.logp_t, b.logp_old_t, adv, b.mask_t, epsilon=0.2, ratio="token")
    assert float((-obj.mean() - theirs).abs().detach()) > 1e-3
    monkeypatch.undo()
    obj = gl.grpo_objective(b.logp_t, b.logp_old_t, adv, b.mask_t, epsilon=0.2, ratio="token")
    assert float((-obj.mean() - theirs).abs().detach()) <= 1e-12


# ---------------------------------------------------------------- the registries
# registered name -> the TRL setting this file compares it with; a name registered with a TRL
# counterpart but missing here fails test_registry_covered
TRL_TERMS = {
    "token": {"loss_type": "dapo", "importance_sampling_level": "token"},
    "gspo": {"loss_type": "grpo", "importance_sampling_level": "sequence"},
    "cispo": {"loss_type": "cispo", "importance_sampling_level": "token"},
    # TRL's delta clamps the unclipped ratio for both signs of A: with delta > 1 + eps_high it
    # changes nothing for A > 0 (the min already takes the clipped side) and caps A < 0 terms
    # at delta A: the dual clip with c = delta
    "dual-clip": {"loss_type": "dapo", "importance_sampling_level": "token", "delta": 3.0},
}
TRL_CASES = {
    "term": TRL_TERMS,
    "loss_agg": {mode: lt for lt, (mode, _) in AGG.items()},  # test_loss
    "kl": {"k3": "beta"},  # test_loss (beta > 0)
    "advantage": TRL_ADVANTAGES,  # test_advantages
    "kl_placement": {"loss": "beta"},
    "correction": {
        "none": "off",
        "tis": "truncate",
        "mis": "mask",
    },  # test_importance_sampling_ratio
}


@pytest.mark.parametrize(
    "axis, name", [(axis, name) for axis, reg in REGISTRIES.items() for name in reg.names()]
)
def test_registry_covered(axis, name, registry_covered):
    """Every registered name has its TRL comparison here, or says why there is none: a
    newly registered function without either fails."""
    registry_covered("trl", TRL_CASES, axis, name)


@pytest.mark.parametrize("term", rt.POLICY_TERMS.names())
def test_policy_term(tmp, term, assert_close, make_batch):
    """Each registered policy term through practice_objective against TRL's _compute_loss with
    the setting it names (clip 0.2 / 0.28), value and gradient. TRL's cispo clips the ratio at
    epsilon_high itself (rlviz: eps_high = epsilon_high - 1, a lower width that never binds).
    The dual clip (TRL's delta = 3) on a batch whose ratios reach e^1.5, so the cap binds."""
    if isinstance(rt.POLICY_TERMS[term].trl, NotInLibrary):
        assert term not in TRL_TERMS
        return  # test_registry_covered holds the reason
    kw = dict(TRL_TERMS[term])
    eps_low, eps_high = (0.99, 1.3 - 1) if term == "cispo" else (0.2, 0.28)
    t = trainer(tmp, beta=0.0, epsilon=0.2, epsilon_high=1.3 if term == "cispo" else 0.28, **kw)
    b = make_batch(7, spread=1.5) if term == "dual-clip" else make_batch(0)
    adv = gl.group_advantages(b.r, "std")
    x_theirs, x_ours = leaves(b)
    theirs = trl_loss(t, b, adv, x_theirs)
    mode = AGG[kw["loss_type"]][0] if kw["loss_type"] in AGG else "token-mean"
    clip_c = kw.get("delta")
    ours = -practice_objective(
        x_ours,
        b.logp_old_t,
        adv,
        b.mask_t,
        term=term,
        agg=mode,
        eps_low=eps_low,
        eps_high=eps_high,
        clip_c=clip_c,
    )
    case = f"{term}, {kw}"
    assert_close(LIB, "GRPOTrainer._compute_loss ~ practice_objective(term)", case, ours, theirs)
    assert_grads_close(
        assert_close,
        b,
        "grad GRPOTrainer._compute_loss ~ grad practice_objective(term)",
        case,
        ours,
        x_ours,
        theirs,
        x_theirs,
    )
    if term == "dual-clip":  # the cap binds: without it the two differ
        plain = -practice_objective(
            b.logp_t,
            b.logp_old_t,
            adv,
            b.mask_t,
            term="token",
            agg=mode,
            eps_low=0.2,
            eps_high=0.28,
        )
        assert float((plain - theirs.detach()).abs()) > 1e-4
