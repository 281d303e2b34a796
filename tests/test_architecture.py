"""The import contract of rlviz's layers (README, "Layout"), checked on the source tree.

    fn/          pure array functions: numpy, torch and the standard library only
    tabular/     the exact float64 world: imports fn
    agents/      trainers on CartPole and the addition task: imports fn, never tabular
    experiments/ the book's settings and runs: may import fn, tabular, agents
    identities/  registered checks: may import all of the above and verify, never figures
    figures/     data in, plotly figure out: fn, tabular and experiments only, never agents
                 (a trained run comes from experiments) nor identities
    jupyter/     widgets, notebooks, the Sphinx extension: nothing below imports it

A chapter module (``experiments/chNN.py``, ``figures/chNN.py``, ``identities/chNN.py``)
imports no module of another chapter (``rlviz.<any layer>.chMM``, MM != NN); it may import
its own chapter's modules of the other layers (``figures/ch05`` -> ``experiments/ch05``). What
several chapters share lives in a module named for what it is (``experiments/corridor_settings``,
``experiments/old_policies``, ``figures/gradient_estimates``, ...); ``experiments/errata.py``
is not a chapter module. No module imports another module's private (``_underscore``) name,
and nothing imports ``book``. The test parses every module (``ast``), so a violation is
reported with its file, line and the rule it breaks; ``test_contract_catches_wrong_imports``
shows the checker failing on a tree with deliberately wrong imports, and
``test_contract_allows_own_chapter_and_errata`` passing the imports it allows.
"""

from __future__ import annotations

import ast
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "rlviz"

# helpers every layer may use
BOTTOM = {"rlviz._validate", "rlviz._threads", "rlviz._cache", "rlviz._progress"}
# layer -> the rlviz layers it may import (besides itself and BOTTOM)
ALLOWED = {
    "fn": set(),
    "tabular": {"fn"},
    "agents": {"fn"},
    "experiments": {"fn", "tabular", "agents"},
    "identities": {"fn", "tabular", "agents", "experiments", "verify"},
    "figures": {"fn", "tabular", "experiments"},
    "jupyter": {"fn", "tabular", "agents", "experiments", "figures", "identities", "verify"},
    "verify": set(),
    "__main__": {"identities", "verify", "experiments"},  # verify; runs (the run store)
    "__init__": {"fn"},  # re-exports the pure functions
    "_validate": set(),
    "_threads": set(),
    "_cache": set(),
    "_progress": set(),
}
# third-party packages the pure-function layer may import
FN_THIRD_PARTY = {"numpy", "torch"}
# the chapter modules: rlviz.<layer>.chNN (the importer's layer must be one of CHAPTER_LAYERS)
CHAPTER = re.compile(r"rlviz\.(\w+)\.ch(\d+)")
CHAPTER_LAYERS = {"experiments", "figures", "identities"}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def chapter_of(module: str) -> str | None:
    """The chapter number ``NN`` of a module ``rlviz.<layer>.chNN``, else None."""
    m = CHAPTER.fullmatch(module)
    return m.group(2) if m else None


def is_module(module: str, root: Path) -> bool:
    """Whether ``module`` (``rlviz....``) is a module or package of the tree at ``root``."""
    path = root.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1] if len(parts) > 2 else parts
    return ".".join(parts)


def imports_of(path: Path, module: str):
    """(line, imported module, imported names) for every import statement of ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target, [a.name for a in node.names]


def violations(root: Path = ROOT) -> list[str]:
    """Every broken rule of the contract in the package at ``root``, one line each."""
    stdlib = set(sys.stdlib_module_names)
    out = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        layer = layer_of(module)
        if layer not in ALLOWED:
            out.append(f"{path}: layer {layer!r} is not in the contract (add it to ALLOWED)")
            continue
        where = f"{path.relative_to(root.parent)}"
        for line, target, names in imports_of(path, module):
            top = target.split(".")[0]
            if top == "book":
                out.append(f"{where}:{line}: imports book/ ({target})")
            if top != "rlviz":
                if layer == "fn" and top not in stdlib and top not in FN_THIRD_PARTY:
                    out.append(
                        f"{where}:{line}: fn/ may import only numpy, torch and the "
                        f"standard library, not {target}"
                    )
                continue
            # "from rlviz import verify" and "from rlviz.experiments import ch03" import the
            # modules rlviz.verify and rlviz.experiments.ch03; other names come from target
            full = {f"{target}.{n}" if is_module(f"{target}.{n}", root) else target for n in names}
            for imported in full or {target}:
                if imported == "rlviz":
                    continue
                if imported in BOTTOM:
                    continue
                other = layer_of(imported)
                if other != layer and other not in ALLOWED[layer]:
                    out.append(f"{where}:{line}: {layer}/ may not import {other} ({imported})")
                mine, theirs = chapter_of(module), chapter_of(imported)
                if layer in CHAPTER_LAYERS and mine and theirs and theirs != mine:
                    out.append(
                        f"{where}:{line}: chapter {mine} imports another chapter's module "
                        f"{imported} (what chapters share lives in a module named for it)"
                    )
            if target != module and target.startswith("rlviz"):
                private = [
                    n
                    for n in names
                    if n.startswith("_")
                    and not n.startswith("__")
                    and f"{target}.{n}" not in BOTTOM
                ]
                if private:
                    out.append(f"{where}:{line}: imports private name(s) {private} of {target}")
    return out


def test_rlviz_keeps_its_import_contract():
    found = violations()
    assert not found, "import contract broken:\n" + "\n".join(found)


def test_every_layer_is_a_folder_in_the_tree():
    for layer in ("fn", "tabular", "agents", "experiments", "identities", "figures", "jupyter"):
        assert (ROOT / layer / "__init__.py").is_file(), layer


@pytest.mark.parametrize(
    "module, line, expected",
    [
        ("fn/returns.py", "from rlviz.tabular.mdp import TabularMDP", "fn/ may not import tabular"),
        ("fn/stats.py", "import scipy", "fn/ may import only numpy, torch"),
        (
            "agents/ppo.py",
            "from rlviz.tabular.mdp import state_values",
            "agents/ may not import tabular",
        ),
        (
            "figures/ch03.py",
            "from rlviz.identities.ch03 import monte_carlo_rate",
            "figures/ may not import identities",
        ),
        (
            "identities/ch05.py",
            "from rlviz.figures.ch05 import variance_figure",
            "identities/ may not import figures",
        ),
        (
            "tabular/mdp.py",
            "from rlviz.jupyter.widgets import explorer",
            "tabular/ may not import jupyter",
        ),
        (
            "identities/ch04.py",
            "from rlviz.identities.ch03 import monte_carlo_rate",
            "imports another chapter's module rlviz.identities.ch03",
        ),
        (
            "figures/ch05.py",
            "from rlviz.experiments.ch03 import mc_estimates",
            "imports another chapter's module rlviz.experiments.ch03",
        ),
        (
            "experiments/ch11.py",
            "from rlviz.experiments import ch10",
            "imports another chapter's module rlviz.experiments.ch10",
        ),
        (
            "figures/ch12.py",
            "from rlviz.agents.ppo import train",
            "figures/ may not import agents",
        ),
        (
            "experiments/ch03.py",
            "from rlviz.tabular.episodic import _check_gamma",
            "imports private name(s) ['_check_gamma']",
        ),
        ("tabular/mdp.py", "import book", "imports book/"),
    ],
)
def test_contract_catches_wrong_imports(tmp_path, module, line, expected):
    """Negative control: the same checker on a copy of rlviz with one wrong import added."""
    copy = tmp_path / "rlviz"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = set(violations(copy))
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}\n")
    new = set(violations(copy)) - before
    assert any(expected in v and module in v for v in new), new


@pytest.mark.parametrize(
    "module, line",
    [
        ("figures/ch05.py", "from rlviz.experiments.ch05 import variance_table"),
        ("identities/ch03.py", "from rlviz.experiments import ch03"),
        ("experiments/errata.py", "from rlviz.experiments.ch11 import cg_report"),
        ("experiments/ch11.py", "from rlviz.experiments.old_policies import book_old"),
    ],
)
def test_contract_allows_own_chapter_and_errata(tmp_path, module, line):
    """Positive control: a chapter's own modules in other layers, the errata appendix's
    imports of chapters, and the shared named modules break no rule."""
    copy = tmp_path / "rlviz"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = set(violations(copy))
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}\n")
    assert set(violations(copy)) == before
