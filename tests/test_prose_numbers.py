"""Every number in the book's prose that a computation produced comes from that computation.

``scripts/check_prose_numbers.py`` reads the markdown of every chapter and appendix; a decimal,
percentage or multiplier typed there must be a glue reference or a declared input (a setting,
a definition, a quoted value). The controls below show that it reports what it must.
"""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("cpn", ROOT / "scripts" / "check_prose_numbers.py")
cpn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cpn)

PAGES = sorted([*ROOT.glob("book/*.ipynb"), *ROOT.glob("book/*.md")])


@pytest.mark.parametrize("path", PAGES, ids=[p.name for p in PAGES])
def test_no_computed_number_is_typed_into_the_prose(path):
    assert cpn.problems(path) == []


def _chapter(tmp_path, markdown: str, declared=None) -> Path:
    nb = {
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": markdown}],
        "metadata": {"rlviz": {"prose_numbers": declared or {}}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "99_x.ipynb"
    path.write_text(json.dumps(nb))
    return path


@pytest.mark.parametrize(
    "typed", ["the ratio is 0.0166 here", "78 % of the states", "ten is 5 times less", "5 × larger"]
)
def test_a_typed_result_is_reported(tmp_path, typed):
    (line,) = cpn.problems(_chapter(tmp_path, typed))
    assert "is typed in the prose" in line


@pytest.mark.parametrize(
    "text",
    [
        "the ratio is {glue:text}`ch10_ratio` here",
        "see section 11.7 and sections 12.1-12.3",
        "## 11.2 A heading",
        "code `x = 0.5` and\n```python\ny = 0.25\n```\n",
        "cited {cite}`schulman2015` in {eq}`eq-1`",
    ],
)
def test_glue_references_sections_headings_and_code_are_not_reported(tmp_path, text):
    assert cpn.problems(_chapter(tmp_path, text)) == []


def test_a_directive_body_is_prose(tmp_path):
    text = ":::{admonition} Note\nthe bias is 0.034\n:::\n"
    assert len(cpn.problems(_chapter(tmp_path, text))) == 1


def test_declared_inputs_are_allowed_and_unused_or_unexplained_ones_reported(tmp_path):
    ok = _chapter(tmp_path, "with gamma = 0.99", {"0.99": "setting: the discount"})
    assert cpn.problems(ok) == []
    unused = _chapter(tmp_path, "no numbers", {"0.99": "setting"})
    assert "no longer types it" in cpn.problems(unused)[0]
    bare = _chapter(tmp_path, "with gamma = 0.99", {"0.99": " "})
    assert "without a reason" in cpn.problems(bare)[0]
