"""rlviz: the numerics behind the book "Policy gradients to PPO and GRPO, derived and verified".

Modules by topic (each is the numerics of a chapter or two):

* :mod:`rlviz.mdp`: tabular MDPs and their exact V, Q, A, d and J (chapters 1, 2, 4)
* :mod:`rlviz.trajectories`: enumerating and sampling trajectories (chapters 1-3)
* :mod:`rlviz.examples`: the example MDPs
* :mod:`rlviz.stats`: Monte-Carlo helpers (z-scores, log-log slopes)
* :mod:`rlviz.episodic`: a small episodic MDP (the corridor) for chapters 3-6
* :mod:`rlviz.policy_gradient`: softmax policies, exact J(theta) in torch, autograd gradients (chapters 3-6)
* :mod:`rlviz.estimators`: the Monte-Carlo policy-gradient estimators and their exact moments (chapters 3-6)
* :mod:`rlviz.advantages`: returns, k-step advantages, GAE and lambda-returns on (T, N) rollouts (chapters 7-9)
* :mod:`rlviz.advantage_stats`: exact bias and variance of advantage estimators (chapter 7)
* :mod:`rlviz.truncation`: time limits, truncation vs termination (chapter 9)
* :mod:`rlviz.verify`: the registry of identity checks (``python -m rlviz verify``)
* :mod:`rlviz.figures`: the plotly figures of the chapters
"""

__version__ = "0.1.0"
