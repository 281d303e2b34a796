r"""The enumerable answer trees of Part IV (chapters 14-17), shared by their experiments,
identity checks and figures: a *bandit* (answers of one token, :func:`bandit_setting`), a random
*tree* (answers of 1 to 3 tokens over ``a``, ``b`` and an end token ``E``, :func:`tree_setting`)
and chapter 14's illustration (:func:`book_tree`). The exact expectations over them are
:mod:`rlviz.tabular.answer_tree`'s and :mod:`rlviz.tabular.grpo_exact`'s.
"""

from __future__ import annotations

import numpy as np

from rlviz.tabular.answer_tree import enumerate_answers

__all__ = ["TREE_WORDS", "bandit_setting", "tree_setting", "book_tree", "answer_words"]

TREE_WORDS = ("a", "b", "E")  # E = the end token


def bandit_setting(seed: int = 0, n_prompts: int = 3, n_answers: int = 5):
    """(answers, logits (P, 1, n), rewards (P, n)) of a random bandit."""
    rng = np.random.default_rng(seed)
    ans = enumerate_answers(n_answers, 1)
    return ans, rng.normal(size=(n_prompts, 1, n_answers)), rng.normal(size=(n_prompts, n_answers))


def tree_setting(seed: int = 0, n_prompts: int = 2):
    """(answers, logits (P, 7, 3), rewards (P, 15) in {0, 1}) of a random tree policy."""
    rng = np.random.default_rng(seed)
    ans = enumerate_answers(3, 3)
    theta = rng.normal(size=(n_prompts, ans.n_prefix, 3))
    return ans, theta, rng.integers(0, 2, size=(n_prompts, ans.n)).astype(float)


def answer_words(ans) -> list[str]:
    """The tree's answers as strings, e.g. ``'abE'``."""
    return ["".join(TREE_WORDS[t] for t in ans.tokens[k, : ans.length[k]]) for k in range(ans.n)]


def book_tree():
    r"""The chapter's illustration: uniform policy; prompt 0 is easy (correct: any answer
    starting with ``a``, success 1/3), prompt 1 hard (correct: ``abE`` only, 1/27)."""
    ans = enumerate_answers(3, 3)
    words = answer_words(ans)
    r = np.array([[float(w.startswith("a")) for w in words], [float(w == "abE") for w in words]])
    return ans, np.zeros((2, ans.n_prefix, 3)), r
