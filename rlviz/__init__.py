"""rlviz: the numerics behind the book "Policy gradients to PPO and GRPO, derived and verified".

Modules by topic (each is the numerics of a chapter or two):

* :mod:`rlviz.mdp`: tabular MDPs and their exact V, Q, A, d and J (chapters 1, 2, 4)
* :mod:`rlviz.trajectories`: enumerating and sampling trajectories (chapters 1-3)
* :mod:`rlviz.examples`: the example MDPs
* :mod:`rlviz.verify`: the registry of identity checks (``python -m rlviz verify``)
* :mod:`rlviz.figures`: the plotly figures of the chapters
"""

__version__ = "0.1.0"
