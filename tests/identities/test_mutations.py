"""Every exact identity and every bound of the book can fail: a mutation makes its row FAIL.

For each row of kind ``exact`` or ``bound`` this module holds one *mutation*: a plausible bug
in the thing the identity is about (drop :math:`\\gamma^t`, flip a sign, shift an index by one,
use the wrong distribution, the wrong constant), applied with ``monkeypatch`` to the function
the check calls. The test runs the row with the mutation and requires ``FAIL``; without it the
row passes (``test_every_registered_identity_passes``). A row for which no meaningful mutation
exists is a sanity row (``kind="sanity"``), and ``test_every_exact_and_bound_row_has_a_mutation``
keeps the table complete as chapters are added.

To see one fail by hand: ``pytest tests/identities/test_mutations.py -k drop_gamma -v`` lists
the mutations that drop gamma^t, and ``python -m rlviz verify`` shows the rows passing without.
More tables live in ``tests/identities/mutations_*.py`` (each a dict ``MUTATIONS`` of the same
form), merged into this one.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from rlviz import identities, verify

CHAPTERS = {m.__name__.rsplit(".", 1)[1]: m for m in identities.CHAPTERS}


def chapter(n: int):
    return CHAPTERS[f"ch{n:02d}"]


def module(name: str):
    return importlib.import_module(f"rlviz.{name}")


def wrap(mp, mod, name, make):
    """Replace ``mod.name`` by ``make(original)``."""
    mp.setattr(mod, name, make(getattr(mod, name)))


def uniform_trajectories(settings_fn):
    """The enumerated settings with every trajectory equally likely: the wrong distribution."""

    def settings():
        for mdp, theta, pi, H, tr, g in settings_fn():
            wrong = type(tr)(tr.states, tr.actions, tr.rewards, tr.alive, np.full(tr.n, 1.0 / tr.n))
            yield mdp, theta, pi, H, wrong, g

    return settings


def _swap_mean_loo(f):
    swap = {"mean": "loo", "loo": "mean"}
    return lambda adv="mean", *a: f(swap.get(adv, adv), *a)


def _flip_k3(mp):
    grpo_loss = module("fn.grpo_loss")

    def kl_estimate(name, logp, logp_ref):
        if name != "k3":
            return grpo_loss.kl_estimate(name, logp, logp_ref)
        log_rho = logp_ref - logp
        return torch.expm1(log_rho) + log_rho  # the sign of the log term flipped

    mp.setattr(module("tabular.answer_tree"), "kl_estimate", kl_estimate)


def _undiscounted_d(mdp, pi):
    """The visitation of the undiscounted chain, normalised: what the notes' sampling gives."""
    mdp_mod = module("tabular.mdp")
    P = mdp_mod.policy_transition(mdp, pi)
    live = ~mdp.terminal
    n = np.zeros(mdp.n_states)
    n[live] = np.linalg.solve(np.eye(live.sum()) - P[np.ix_(live, live)].T, mdp.rho0[live])
    return n / n.sum()


def _true_gradient_field(mdp, th):
    """grad J as a function of the logits: a vector field whose Jacobian is symmetric."""
    th = th if th.requires_grad else th.detach().requires_grad_()
    J = module("tabular.policy_gradient").objective_torch(mdp, th)
    return torch.autograd.grad(J, th, create_graph=True)[0]


# key -> (name of the bug, the patch that plants it)
MUTATIONS = {
    # chapter 1
    "ch1.objective_enumeration_vs_recursion": (
        "drop gamma^t in the return",
        lambda mp: wrap(mp, chapter(1), "discounted_sum", lambda f: lambda rew, gamma: f(rew, 1.0)),
    ),
    "ch1.objective_enumeration_vs_solve": (
        "drop gamma^t in the return",
        lambda mp: wrap(mp, chapter(1), "discounted_sum", lambda f: lambda rew, gamma: f(rew, 1.0)),
    ),
    "ch1.horizon_bound": (
        "J with the wrong discount (0.95 for 0.9)",
        lambda mp: wrap(
            mp,
            chapter(1),
            "objective",
            lambda f: lambda m, p: f(dataclasses.replace(m, gamma=0.95), p),
        ),
    ),
    "ch1.return_recursion": (
        "drop gamma^t in the reward-to-go",
        lambda mp: wrap(mp, chapter(1), "rewards_to_go", lambda f: lambda rew, gamma: f(rew, 1.0)),
    ),
    # chapter 2
    "ch2.two_state_by_hand": (
        "the two states' policies swapped (wrong index)",
        lambda mp: wrap(
            mp, chapter(2), "two_state_values_by_hand", lambda f: lambda g, a, b: f(g, b, a)
        ),
    ),
    "ch2.bellman_equations": (
        "Q without the discount",
        lambda mp: wrap(
            mp,
            module("tabular.mdp"),
            "action_values",
            lambda f: (
                lambda mdp, pi: (
                    mdp.r
                    + np.einsum("sat,t->sa", mdp.P, module("tabular.mdp").state_values(mdp, pi))
                )
            ),
        ),
    ),
    "ch2.advantage_mean_zero": (
        "A centred with the uniform policy (wrong distribution)",
        lambda mp: wrap(
            mp,
            chapter(2),
            "advantages",
            lambda f: (
                lambda m, p: (
                    module("tabular.mdp").action_values(m, p)
                    - module("tabular.mdp").action_values(m, p).mean(1, keepdims=True)
                )
            ),
        ),
    ),
    # chapter 3
    "ch3.score_closed_form": (
        "score with the sign flipped",
        lambda mp: wrap(mp, chapter(3), "score_table", lambda f: lambda pi: -f(pi)),
    ),
    "ch3.total_return_exact": (
        "drop gamma^t in the total return",
        lambda mp: wrap(
            mp, chapter(3), "total_return_estimates", lambda f: lambda tr, pi, gamma: f(tr, pi, 1.0)
        ),
    ),
    "ch3.past_rewards_zero": (
        "expectation under the wrong distribution (uniform over trajectories)",
        lambda mp: wrap(mp, chapter(3), "enumerated_settings", uniform_trajectories),
    ),
    "ch3.reward_to_go_exact": (
        "drop gamma^t in front of G_t",
        lambda mp: wrap(
            mp,
            chapter(3),
            "reward_to_go_estimates",
            lambda f: lambda tr, pi, gamma, **kw: f(tr, pi, gamma, discount_t=False),
        ),
    ),
    "ch3.reward_to_go_variance": (
        "the estimators swapped",
        lambda mp: wrap(
            mp,
            chapter(3),
            "mc_estimates",
            lambda f: (
                lambda *a, **k: dict(zip(("reward-to-go", "total return"), f(*a, **k).values()))
            ),
        ),
    ),
    # chapter 4
    "ch4.discounted_sum_as_d": (
        "d without gamma (the undiscounted visitation, normalised)",
        lambda mp: wrap(
            mp,
            chapter(4),
            "discounted_state_distribution",
            lambda f: lambda m, pi: _undiscounted_d(m, pi),
        ),
    ),
    "ch4.policy_gradient_theorem": (
        "d without gamma (the notes' misconception)",
        lambda mp: wrap(
            mp,
            module("tabular.policy_gradient"),
            "discounted_state_distribution",
            lambda f: lambda m, pi: _undiscounted_d(m, pi),
        ),
    ),
    "ch4.hessian_symmetric": (
        "the Jacobian of the notes' direction (gamma^t dropped)",
        lambda mp: wrap(
            mp,
            chapter(4),
            "exact_hessian",
            lambda f: (
                lambda m, th: module("tabular.policy_gradient").jacobian_asymmetry(
                    lambda t: module("tabular.policy_gradient").notes_direction_torch(m, t), th
                )[1]
            ),
        ),
    ),
    "ch4.notes_direction_not_gradient": (
        "the notes' direction keeps gamma^t (a true gradient)",
        lambda mp: wrap(
            mp, module("experiments.ch04"), "notes_direction_torch", lambda f: _true_gradient_field
        ),
    ),
    # chapter 5
    "ch5.baseline_zero_mean": (
        "the score shifted one step back (psi_{t-1} against b_t(s_t))",
        lambda mp: wrap(
            mp, chapter(5), "score_terms", lambda f: lambda tr, pi: np.roll(f(tr, pi), 1, axis=1)
        ),
    ),
    "ch5.baselines_unbiased": (
        "drop gamma^t in front of G_t - b",
        lambda mp: wrap(
            mp,
            chapter(5),
            "reward_to_go_estimates",
            lambda f: lambda tr, pi, gamma, **kw: f(tr, pi, gamma, **kw, discount_t=False),
        ),
    ),
    "ch5.optimal_baseline_parabola": (
        "b* off by a constant",
        lambda mp: wrap(mp, chapter(5), "optimal_baseline", lambda f: lambda *a: f(*a) + 0.5),
    ),
    "ch5.action_baseline_bias": (
        "the closed-form bias with its sign flipped",
        lambda mp: wrap(mp, chapter(5), "action_baseline_bias", lambda f: lambda *a: -f(*a)),
    ),
    # chapter 6
    "ch6.advantage_form": (
        "drop gamma^t in front of A_t",
        lambda mp: wrap(
            mp,
            chapter(6),
            "advantage_estimates",
            lambda f: lambda tr, pi, gamma, adv: f(tr, pi, 1.0, adv),
        ),
    ),
    "ch6.advantage_estimate_unbiased": (
        "Q_t taken one step late (index shifted)",
        lambda mp: wrap(
            mp,
            chapter(6),
            "finite_horizon_values",
            lambda f: lambda *a: (lambda vq: (vq[0], np.roll(vq[1], -1, axis=0)))(f(*a)),
        ),
    ),
    # chapter 7
    "ch7.unbiased_with_true_v": (
        "V off by 0.1 (not the true V)",
        lambda mp: wrap(
            mp, chapter(7), "state_values", lambda f: lambda m, p: f(m, p) + 0.1 * ~m.terminal
        ),
    ),
    "ch7.kstep_bias_formula": (
        "k shifted by one in the moment recursion",
        lambda mp: wrap(
            mp, chapter(7), "kstep_moments", lambda f: lambda m, p, v, k: f(m, p, v, k + 1)
        ),
    ),
    "ch7.kstep_moments_enumeration": (
        "k shifted by one",
        lambda mp: wrap(
            mp,
            chapter(7),
            "kstep_moments_by_enumeration",
            lambda f: lambda m, p, v, k: f(m, p, v, k + 1),
        ),
    ),
    "ch7.gae_moments_enumeration": (
        "the wrong lambda",
        lambda mp: wrap(
            mp,
            chapter(7),
            "gae_moments_by_enumeration",
            lambda f: lambda U, p, v, lam, *a, **k: f(U, p, v, lam**2, *a, **k),
        ),
    ),
    "ch7.gae_mixture_of_kstep_means": (
        "k shifted by one",
        lambda mp: wrap(
            mp, chapter(7), "kstep_moments", lambda f: lambda m, p, v, k: f(m, p, v, k + 1)
        ),
    ),
    # chapter 8
    "ch8.kstep_telescoping": (
        "one TD error too many (k + 1 terms)",
        lambda mp: wrap(
            mp,
            chapter(8),
            "discounted_td_sum",
            lambda f: lambda d, e, fac, k=None: f(d, e, fac, None if k is None else k + 1),
        ),
    ),
    "ch8.gae_closed_form": (
        "GAE with lambda dropped",
        lambda mp: wrap(mp, chapter(8), "gae", lambda f: lambda *a, lam, **k: f(*a, lam=1.0, **k)),
    ),
    "ch8.gae_mixture_tail": (
        "k-step advantages with k shifted by one",
        lambda mp: wrap(
            mp,
            module("experiments.ch08"),
            "k_step_advantages",
            lambda f: lambda *a, k, **kw: f(*a, k=k + 1, **kw),
        ),
    ),
    # chapter 9
    "ch9.fast_equals_reference": (
        "the reference treats truncation as termination",
        lambda mp: wrap(
            mp,
            chapter(9),
            "gae_reference",
            lambda f: (
                lambda tr, **k: f(
                    dataclasses.replace(tr, v_final_t=np.zeros_like(tr.v_final_t)), **k
                )
            ),
        ),
    ),
    "ch9.lambda_zero": (
        "drop gamma in the TD error",
        lambda mp: wrap(
            mp, chapter(9), "td_errors", lambda f: lambda *a, gamma, **k: f(*a, gamma=1.0, **k)
        ),
    ),
    "ch9.lambda_one": (
        "drop gamma in the return",
        lambda mp: wrap(
            mp,
            chapter(9),
            "discounted_returns",
            lambda f: lambda *a, gamma, **k: f(*a, gamma=1.0, **k),
        ),
    ),
    "ch9.targets_are_lambda_returns": (
        "the wrong lambda in the lambda-return",
        lambda mp: wrap(
            mp, chapter(9), "lambda_returns", lambda f: lambda *a, lam, **k: f(*a, lam=lam / 2, **k)
        ),
    ),
    "ch9.truncation_bootstrap_unbiased": (
        "truncation treated as termination",
        lambda mp: wrap(
            mp,
            chapter(9),
            "targets_by_enumeration",
            lambda f: lambda *a, **k: f(*a, truncation_as_termination=True),
        ),
    ),
    "ch9.truncation_as_termination_bias": (
        "the closed-form bias with its sign flipped",
        lambda mp: wrap(mp, chapter(9), "target_bias", lambda f: lambda *a: -f(*a)),
    ),
    "ch9.fitted_values_fixed_point": (
        "truncation treated as termination",
        lambda mp: wrap(
            mp,
            chapter(9),
            "fitted_fixed_point",
            lambda f: lambda *a, **k: f(*a, truncation_as_termination=True),
        ),
    ),
    # chapter 10
    "ch10.importance_sampling": (
        "the ratio upside down (pi_old / pi_new)",
        lambda mp: wrap(
            mp,
            chapter(10),
            "importance_weighted_means",
            lambda f: lambda po, pn, x: ((po * (po / pn) * x).sum(1), f(po, pn, x)[1]),
        ),
    ),
    "ch10.performance_difference": (
        "states weighted uniformly (wrong distribution)",
        lambda mp: wrap(
            mp,
            chapter(10),
            "discounted_state_distribution",
            lambda f: lambda m, pi: np.full(m.n_states, 1.0 / m.n_states),
        ),
    ),
    "ch10.surrogate_gradient_at_old": (
        "the surrogate without its 1/(1 - gamma)",
        lambda mp: wrap(
            mp,
            chapter(10),
            "surrogate_torch",
            lambda f: lambda old, th: f(old, th) * (1 - old.mdp.gamma),
        ),
    ),
    "ch10.gradients_part_away": (
        "L replaced by J (no approximation left)",
        lambda mp: wrap(
            mp,
            module("experiments.ch10"),
            "surrogate_torch",
            lambda f: (
                lambda old, th: module("tabular.policy_gradient").objective_torch(old.mdp, th)
            ),
        ),
    ),
    "ch10.second_order_contact": (
        "a surrogate with the wrong slope at theta_old",
        lambda mp: wrap(
            mp,
            chapter(10),
            "line_profile",
            lambda f: (
                lambda old, u, ts: {**f(old, u, ts), "L": f(old, u, ts)["L"] + 0.1 * np.asarray(ts)}
            ),
        ),
    ),
    "ch10.chi2_is_twice_kl": (
        "chi^2 set against KL instead of 2 KL",
        lambda mp: wrap(mp, chapter(10), "kl_rows", lambda f: lambda p, q: 2 * f(p, q)),
    ),
    # chapter 11
    "ch11.fisher_is_kl_hessian": (
        "the Fisher matrix off by a factor 2 (KL ~ s^T F s)",
        lambda mp: wrap(mp, chapter(11), "fisher_matrix", lambda f: lambda o: 2 * f(o)),
    ),
    "ch11.reverse_kl_hessian_is_fisher": (
        "the Fisher matrix off by a factor 2",
        lambda mp: wrap(mp, chapter(11), "fisher_matrix", lambda f: lambda o: 2 * f(o)),
    ),
    "ch11.fvp_matches_fisher": (
        "Fisher-vector products with damping 0.1",
        lambda mp: wrap(
            mp, chapter(11), "fvp_operator", lambda f: lambda o, damping=0.0: f(o, 0.1)
        ),
    ),
    "ch11.cg_solves_fisher_system": (
        "CG stopped after 2 iterations",
        lambda mp: wrap(
            mp,
            chapter(11),
            "cg_report",
            lambda f: lambda o, damping=0.0, iters=30: f(o, damping, 2),
        ),
    ),
    "ch11.natural_gradient_is_advantage": (
        "the advantage not centred per state",
        lambda mp: wrap(
            mp, chapter(11), "tabular_natural_gradient", lambda f: lambda o: f(o) + 0.1
        ),
    ),
    "ch11.quadratic_kl_on_boundary": (
        "the step size without the 2 (sqrt(delta / g^T x))",
        lambda mp: wrap(
            mp, chapter(11), "trpo_step_size", lambda f: lambda g, x, delta: f(g, x, delta / 2)
        ),
    ),
    "ch11.step_kl_within_delta": (
        "the step taken for 4 delta",
        lambda mp: wrap(
            mp,
            module("experiments.ch11"),
            "tabular_trpo_step",
            lambda f: lambda o, delta, **k: f(o, 4 * delta, **k),
        ),
    ),
    "ch11.schulman_lower_bound": (
        "the KL penalty with its sign flipped (L + C KL)",
        lambda mp: wrap(
            mp,
            module("experiments.ch11"),
            "bound_profiles",
            lambda f: (
                lambda *a, **k: {
                    name: {**p, "bound": 2 * p["L"] - p["bound"]} for name, p in f(*a, **k).items()
                }
            ),
        ),
    ),
    "ch11.kl_penalty_needed": (
        "a surrogate equal to J (nothing left to penalise)",
        lambda mp: wrap(
            mp,
            module("tabular.surrogate"),
            "surrogate_torch",
            lambda f: (
                lambda old, th: module("tabular.policy_gradient").objective_torch(old.mdp, th)
            ),
        ),
    ),
    # (a larger trust region does not break it: tabular natural-gradient steps with exact
    # advantages improve J at any size; minimising the surrogate does)
    "ch11.trpo_monotone": (
        "the surrogate with its sign flipped (TRPO minimises L)",
        lambda mp: wrap(
            mp,
            module("tabular.surrogate"),
            "surrogate_torch",
            lambda f: lambda old, th: 2 * old.J - f(old, th),
        ),
    ),
    # chapter 12
    "ch12.clip_lower_bound": (
        "max instead of min (the optimistic bound)",
        lambda mp: wrap(
            mp,
            chapter(12),
            "clipped_surrogate",
            lambda f: lambda r, a, e: torch.maximum(r * a, torch.clamp(r, 1 - e, 1 + e) * a),
        ),
    ),
    "ch12.clip_equal_inside": (
        "the clip at 1 +/- epsilon/2 (wrong constant)",
        lambda mp: wrap(
            mp, chapter(12), "clipped_surrogate", lambda f: lambda r, a, e: f(r, a, e / 2)
        ),
    ),
    "ch12.clip_piecewise": (
        "the two-sided clip without the min (the notes' wording)",
        lambda mp: wrap(
            mp,
            chapter(12),
            "clipped_surrogate",
            lambda f: lambda r, a, e: torch.clamp(r, 1 - e, 1 + e) * a,
        ),
    ),
    "ch12.clip_zero_gradient": (
        "the two-sided clip without the min (the notes' wording)",
        lambda mp: wrap(
            mp,
            chapter(12),
            "clipped_surrogate",
            lambda f: lambda r, a, e: torch.clamp(r, 1 - e, 1 + e) * a,
        ),
    ),
    "ch12.clip_gradient_at_old": (
        "the clip applied to r A instead of r",
        lambda mp: wrap(
            mp,
            chapter(12),
            "clipped_surrogate",
            lambda f: lambda r, a, e: torch.minimum(r * a, torch.clamp(r * a, 1 - e, 1 + e)),
        ),
    ),
    # chapter 13
    "ch13.value_clip_inside": (
        "min instead of max in the clipped value loss",
        lambda mp: wrap(
            mp,
            chapter(13),
            "value_loss",
            lambda f: (
                lambda v, t, v_old=None, clip=None: (
                    f(v, t)
                    if clip is None
                    else torch.minimum(
                        (v - t) ** 2, (v_old + torch.clamp(v - v_old, -clip, clip) - t) ** 2
                    )
                )
            ),
        ),
    ),
    "ch13.c1_changes_the_clipped_actor_step": (
        "actor and critic clipped separately",
        lambda mp: wrap(
            mp,
            chapter(13),
            "clip_grad_norm_per_setting",
            lambda f: (
                lambda grad, max_norm: (
                    grad
                    * torch.clamp(
                        max_norm.repeat(2, 1) / (grad.norm(dim=1, keepdim=True) + 1e-6), max=1.0
                    )
                )
            ),
        ),
    ),
    # chapter 14
    "ch14.mean_baseline_scale": (
        "the baseline leaves r_i out (mean and leave-one-out swapped)",
        lambda mp: wrap(mp, chapter(14), "group_gradient_fn", _swap_mean_loo),
    ),
    "ch14.loo_unbiased": (
        "the baseline keeps r_i (mean and leave-one-out swapped)",
        lambda mp: wrap(mp, chapter(14), "group_gradient_fn", _swap_mean_loo),
    ),
    "ch14.drgrpo_constant_norm": (
        "per-answer normaliser 1/|y_i| instead of the constant",
        lambda mp: wrap(
            mp,
            chapter(14),
            "group_gradient_fn",
            lambda f: lambda adv="mean", ratio="sequence", norm=None: f(adv, ratio, "sequence"),
        ),
    ),
    "ch14.length_norm_bias": (
        "the per-answer normaliser not applied",
        lambda mp: wrap(
            mp,
            module("experiments.ch14"),
            "group_gradient_fn",
            lambda f: (
                lambda adv="mean", ratio="sequence", norm=None: f(
                    adv, ratio, "constant" if norm else norm
                )
            ),
        ),
    ),
    "ch14.std_norm_bias": (
        "advantages not divided by the std",
        lambda mp: wrap(
            mp,
            module("experiments.ch14"),
            "group_gradient_fn",
            lambda f: lambda adv="mean", *a: f("mean" if adv == "std" else adv, *a),
        ),
    ),
    "ch14.drgrpo_needs_mean_centring": (
        "advantages not divided by the std",
        lambda mp: wrap(
            mp,
            module("experiments.ch14"),
            "group_gradient_fn",
            lambda f: lambda adv="mean", *a: f("mean" if adv == "std" else adv, *a),
        ),
    ),
    "ch14.kl_estimators_unbiased": (
        "k2 summed instead of k1 and k3",
        lambda mp: wrap(
            mp,
            chapter(14),
            "summed_kl_estimates",
            lambda f: lambda lp, lr, ans, kl="k3": f(lp, lr, ans, "k2"),
        ),
    ),
    "ch14.k3_nonnegative": ("k3 with the sign of its log term flipped", _flip_k3),
    "ch14.k3_low_variance": ("k3 with the sign of its log term flipped", _flip_k3),
    "ch14.k3_variance_rates": ("k3 with the sign of its log term flipped", _flip_k3),
    "ch14.k3_gradient_reverse_kl": (
        "k1 in the loss instead of k3",
        lambda mp: wrap(
            mp,
            chapter(14),
            "k3_loss_gradient",
            lambda f: lambda th, ref, ans, kl="k3": f(th, ref, ans, "k1"),
        ),
    ),
    "ch14.k3_gradient_not_kl": (
        "k2 in the loss (whose gradient is the KL's)",
        lambda mp: wrap(
            mp,
            module("experiments.ch14"),
            "k3_loss_gradient",
            lambda f: lambda th, ref, ans, kl="k3": f(th, ref, ans, "k2"),
        ),
    ),
    "ch14.k3_gradient_multitoken": (
        "prefixes weighted by pi_ref (the answers' reverse KL)",
        lambda mp: wrap(
            mp,
            chapter(14),
            "prefix_reverse_kl_gradient",
            lambda f: module("tabular.answer_tree").reverse_kl_gradient,
        ),
    ),
    "ch14.k3_gradient_not_answer_reverse_kl": (
        "prefixes weighted by pi_theta in the reference too",
        lambda mp: wrap(
            mp,
            chapter(14),
            "reverse_kl_gradient",
            lambda f: module("tabular.answer_tree").prefix_reverse_kl_gradient,
        ),
    ),
    "ch14.k2_gradient_is_kl": (
        "compared with the reverse KL's gradient (wrong direction)",
        lambda mp: wrap(
            mp,
            chapter(14),
            "forward_kl_gradient",
            lambda f: module("tabular.answer_tree").reverse_kl_gradient,
        ),
    ),
    "ch14.offpolicy_kl_importance_weighted": (
        "the importance weight forgotten",
        lambda mp: wrap(
            mp,
            chapter(14),
            "offpolicy_kl",
            lambda f: lambda *a: (lambda r: {**r, "k1_is": r["k1"], "k3_is": r["k3"]})(f(*a)),
        ),
    ),
    "ch14.offpolicy_kl_bias": (
        "answers sampled from pi_theta (on-policy)",
        lambda mp: wrap(
            mp, chapter(14), "offpolicy_kl", lambda f: lambda th, old, ref, ans: f(th, th, ref, ans)
        ),
    ),
}


def _more_mutations() -> None:
    """Add the tables of ``tests/identities/mutations_*.py`` (one per group of chapters, so
    that chapters are added without editing this file); a key defined twice is an error."""
    for path in sorted(Path(__file__).parent.glob("mutations_*.py")):
        spec = importlib.util.spec_from_file_location(f"_mutations_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        twice = sorted(set(mod.MUTATIONS) & set(MUTATIONS))
        assert not twice, f"{path.name} redefines mutations of {twice}"
        MUTATIONS.update(mod.MUTATIONS)


_more_mutations()


def test_every_exact_and_bound_row_has_a_mutation():
    rows = {k for k, i in verify.registry().items() if i.kind in ("exact", "bound")}
    missing = sorted(rows - set(MUTATIONS))
    stale = sorted(set(MUTATIONS) - rows)
    assert not missing, f"exact/bound rows without a mutation test: {missing}"
    assert not stale, f"mutations of rows that are not exact/bound rows: {stale}"


@pytest.mark.parametrize(
    "key", sorted(MUTATIONS), ids=lambda k: f"{k}:{MUTATIONS[k][0].replace(' ', '_')}"
)
def test_mutation_makes_the_row_fail(key, monkeypatch):
    name, plant = MUTATIONS[key]
    assert verify.run(key).ok, f"{key} must pass without the mutation"
    plant(monkeypatch)
    result = verify.run(key)
    assert not result.ok, f"{key} still passes with the bug '{name}': {result.line()}"
