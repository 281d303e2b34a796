"""rlviz: the numerics behind the book "Policy gradients to PPO and GRPO, derived and verified".

Modules by topic (each is the numerics of a chapter or two):

* :mod:`rlviz.tabular.mdp`: tabular MDPs and their exact V, Q, A, d and J (chapters 1, 2, 4)
* :mod:`rlviz.tabular.trajectories`: enumerating and sampling trajectories (chapters 1-3)
* :mod:`rlviz.tabular.examples`: the example MDPs
* :mod:`rlviz.fn.stats`: Monte-Carlo helpers (z-scores, log-log slopes)
* :mod:`rlviz.tabular.episodic`: a small episodic MDP (the corridor) for chapters 3-6
* :mod:`rlviz.tabular.policy_gradient`: softmax policies, exact J(theta) in torch, autograd gradients (chapters 3-6)
* :mod:`rlviz.tabular.pg_estimators`: the Monte-Carlo policy-gradient estimators and their exact moments (chapters 3-6)
* :mod:`rlviz.fn.returns`: returns, k-step advantages, GAE and lambda-returns on (T, N) rollouts (chapters 7-9)
* :mod:`rlviz.tabular.advantage_moments`: exact bias and variance of advantage estimators (chapter 7)
* :mod:`rlviz.tabular.truncation`: time limits, truncation vs termination (chapter 9)
* :mod:`rlviz.verify`: the registry of identity checks (``python -m rlviz verify``)
* :mod:`rlviz.figures`: the plotly figures of the chapters
"""

__version__ = "0.1.0"
