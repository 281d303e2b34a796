"""The import contract of rlviz's layers (README, "Layout"), checked on the source tree.

    fn/          pure array functions: numpy, torch and the standard library only
    tabular/     the exact float64 world: imports fn
    agents/      trainers on CartPole and the addition task: imports fn, never tabular
    experiments/ the book's settings and runs: may import fn, tabular, agents
    identities/  registered checks: may import all of the above and verify, never figures
    figures/     data in, plotly figure out: never identities (data comes from experiments)
    jupyter/     widgets, notebooks, the Sphinx extension: nothing below imports it

No module imports another module's private (``_underscore``) name, no chapter module of
identities imports another chapter's checks (what chapters share lives in experiments/; a
later chapter's experiments may reuse an earlier chapter's settings), and nothing imports
``book``. The test parses every module (``ast``), so a violation is reported
with its file, line and the rule it breaks; ``test_contract_catches_wrong_imports`` shows the
checker failing on a tree with deliberately wrong imports.
"""

from __future__ import annotations

import ast
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "rlviz"

BOTTOM = {"rlviz._validate", "rlviz._threads", "rlviz._cache"}  # helpers every layer may use
# layer -> the rlviz layers it may import (besides itself and BOTTOM)
ALLOWED = {
    "fn": set(),
    "tabular": {"fn"},
    "agents": {"fn"},
    "experiments": {"fn", "tabular", "agents"},
    "identities": {"fn", "tabular", "agents", "experiments", "verify"},
    "figures": {"fn", "tabular", "agents", "experiments"},
    "jupyter": {"fn", "tabular", "agents", "experiments", "figures", "identities", "verify"},
    "verify": set(),
    "__main__": {"identities", "verify"},
    "__init__": {"fn"},  # re-exports the pure functions
    "_validate": set(),
    "_threads": set(),
    "_cache": set(),
}
# third-party packages the pure-function layer may import
FN_THIRD_PARTY = {"numpy", "torch"}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


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
            # "from rlviz import verify" imports the module rlviz.verify
            full = [f"rlviz.{n}" for n in names] if target == "rlviz" else [target]
            for imported in set(full):
                if imported == "rlviz":
                    continue
                if imported in BOTTOM:
                    continue
                other = layer_of(imported)
                if other != layer and other not in ALLOWED[layer]:
                    out.append(f"{where}:{line}: {layer}/ may not import {other} ({imported})")
                if (
                    other == layer
                    and layer == "identities"
                    and imported.count(".") == 2
                    and module.count(".") == 2
                    and imported.rsplit(".", 1)[1].startswith("ch")
                    and module.rsplit(".", 1)[1].startswith("ch")
                    and imported != module
                ):
                    out.append(
                        f"{where}:{line}: {module} imports its sibling chapter "
                        f"{imported} (shared settings belong in experiments/)"
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
            "imports its sibling chapter",
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
