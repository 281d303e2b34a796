"""rlviz: the numerics behind the book "Policy gradients to PPO and GRPO, derived and verified".

The package is in layers; each imports only the layers below it (``tests/test_architecture.py``
checks the rules):

* :mod:`rlviz.fn`: pure array functions (numpy, torch): returns and GAE, the PPO and GRPO
  loss terms, trust-region steps, statistics. One copy of each formula, called by the
  chapters, the trainers and the tests alike. Its public functions are re-exported here
  (``rlviz.gae``, ``rlviz.clipped_surrogate``, ``rlviz.practice_objective``, the GRPO
  registries ``rlviz.POLICY_TERMS``, ...), as rlax does.
* :mod:`rlviz.tabular`: the exact float64 world of small MDPs (linear algebra and enumeration).
* :mod:`rlviz.agents`: batched CartPole, the PPO and TRPO trainers, the addition task with its
  GRPO and PPO trainers. Agents import ``fn``, never ``tabular``.
* :mod:`rlviz.experiments`, :mod:`rlviz.identities`, :mod:`rlviz.figures`: the book's settings
  and runs, its registered identity checks (``python -m rlviz verify``) and its plotly figures,
  one module per chapter.
* :mod:`rlviz.jupyter`: live widgets, the notebooks' save hook, the Sphinx extension.
"""

from rlviz.fn.grpo_aggregation import AGGREGATIONS, accumulated, aggregate
from rlviz.fn.grpo_loss import (
    ADVANTAGES,
    KL_ESTIMATORS,
    KL_PLACEMENTS,
    group_advantages,
    grpo_objective,
    kl_estimate,
    mixed_groups,
    sequence_ratios,
    token_ratios,
)
from rlviz.fn.grpo_practice import practice_objective
from rlviz.fn.offpolicy import CORRECTIONS, OffPolicy, correction_weights, importance_weights
from rlviz.fn.ppo_loss import (
    approx_kl,
    categorical_kl,
    clip_fraction,
    clipped_surrogate,
    entropy,
    k3,
    normalize_advantages,
    policy_gradient_surrogate,
    value_loss,
)
from rlviz.fn.ratios import (
    POLICY_TERMS,
    asymmetric_clipped_surrogate,
    cispo_surrogate,
    dual_clipped_surrogate,
    gspo_ratios,
)
from rlviz.fn.returns import (
    Transitions,
    discounted_returns,
    gae,
    gae_reference,
    k_step_advantages,
    lambda_returns,
    linear_scan,
    next_values,
    td_errors,
)
from rlviz.fn.stats import (
    angle_and_norm_ratio,
    angle_deg,
    loglog_slope,
    sample_mean_se,
    sample_variance_se,
    z_scores,
)
from rlviz.fn.trust_region import (
    backtracking_line_search,
    conjugate_gradient,
    fisher_vector_product,
    trpo_step_size,
)

__version__ = "0.1.0"

__all__ = [
    # GRPO: the registries, the objective and its pieces (chapters 14-17)
    "ADVANTAGES",
    "AGGREGATIONS",
    "CORRECTIONS",
    "KL_ESTIMATORS",
    "KL_PLACEMENTS",
    "POLICY_TERMS",
    "OffPolicy",
    "accumulated",
    "aggregate",
    "asymmetric_clipped_surrogate",
    "cispo_surrogate",
    "correction_weights",
    "dual_clipped_surrogate",
    "group_advantages",
    "grpo_objective",
    "gspo_ratios",
    "importance_weights",
    "kl_estimate",
    "mixed_groups",
    "practice_objective",
    "sequence_ratios",
    "token_ratios",
    # returns
    "Transitions",
    "discounted_returns",
    "gae",
    "gae_reference",
    "k_step_advantages",
    "lambda_returns",
    "linear_scan",
    "next_values",
    "td_errors",
    # the PPO loss
    "approx_kl",
    "categorical_kl",
    "clip_fraction",
    "clipped_surrogate",
    "entropy",
    "k3",
    "normalize_advantages",
    "policy_gradient_surrogate",
    "value_loss",
    # trust regions
    "backtracking_line_search",
    "conjugate_gradient",
    "fisher_vector_product",
    "trpo_step_size",
    # statistics
    "angle_and_norm_ratio",
    "angle_deg",
    "loglog_slope",
    "sample_mean_se",
    "sample_variance_se",
    "z_scores",
]
