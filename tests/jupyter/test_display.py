"""show_source's listings: short ones whole, long ones collapsed below their signature and docstring."""

import inspect

import pytest

from rlviz.agents.ppo import train
from rlviz.fn.ppo_loss import entropy
from rlviz.jupyter.display import LONG_SOURCE, glue_number, source_markdown


def test_a_short_listing_is_shown_whole_and_open():
    md = source_markdown(entropy)
    assert len(inspect.getsource(entropy).splitlines()) <= LONG_SOURCE
    assert "<details>" not in md
    assert inspect.getsource(entropy) in md


def test_a_long_listing_shows_its_head_and_collapses_the_whole_source():
    src = inspect.getsource(train)
    assert len(src.splitlines()) > LONG_SOURCE
    md = source_markdown(train)
    head, _, collapsed = md.partition("<details>")
    assert "def train(" in head and train.__doc__.strip().splitlines()[0] in head
    body_line = "rollout_advantages(agent, runner"  # a line of the body, after the docstring
    assert body_line in src and body_line not in head
    assert src in collapsed and collapsed.rstrip().endswith("</details>")


def test_the_threshold_decides():
    assert "<details>" in source_markdown(entropy, long=3)
    assert "<details>" not in source_markdown(train, long=10_000)


def test_glue_number_glues_the_formatted_text(monkeypatch):
    glued = {}
    monkeypatch.setattr("myst_nb.glue", lambda name, v, display: glued.update({name: (v, display)}))
    assert glue_number("ch10_ratio", 0.016623455, ".4f") == "0.0166"
    assert glued == {"ch10_ratio": ("0.0166", False)}
    with pytest.raises(ValueError, match="name must be"):
        glue_number("bad name", 1.0, ".1f")
