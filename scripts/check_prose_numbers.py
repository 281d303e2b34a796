"""Find numbers typed into the book's prose that a computation may have produced.

Usage: python scripts/check_prose_numbers.py [book/*.ipynb book/*.md ...]   (default: all of book/)

A number a computation produced must reach the page from that computation: a myst-nb glue
reference (``{glue:text}`name```), or a printed line whose output nbval compares. This script
reads the *markdown* of every chapter and appendix and reports each decimal number
(``0.0166``), percentage (``78 %``) and multiplier (``5 times``, ``5 ×``) in it that is
neither a glue reference nor declared as an input.

What is not prose is skipped: fenced blocks (code, directives' bodies are kept), inline code,
roles (``{cite}``, ``{ref}``, ``{eq}``, ``{glue:...}``), headings, and section numbers
(``section 11.7``, ``§12.3``, ``sections 13.1-13.5``).

**Declared inputs.** A number that is a setting, a definition or a value quoted from the
literature (``gamma = 0.99``, ``epsilon in {0.1, 0.2, 0.3}``, ``475`` to solve CartPole) may
be typed. A chapter declares them in its notebook metadata, each with the reason::

    "rlviz": {"prose_numbers": {"0.99": "setting: the discount of the corridor MDP", ...}}

and a markdown page (``book/*.md``) in :data:`MARKDOWN_INPUTS` below. A declared number is
allowed anywhere in its page; a declaration nobody uses is reported too (it would hide a
later computed number of the same spelling). Exit status 1 if anything is reported.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# book/*.md pages: number -> why it may be typed (measured timings are labelled on the page)
MARKDOWN_INPUTS: dict[str, dict[str, str]] = {
    "appendix_benchmarks.md": {
        "18.3": "measured: benchmarks/gae.py, one run, Nov 2026 (labelled on the page)",
        "1.03": "measured: benchmarks/gae.py, one run, Nov 2026 (labelled on the page)",
        "0.024": "measured: benchmarks/gae.py, one run, Nov 2026 (labelled on the page)",
        "17.8": "measured: benchmarks/gae.py, one run, Nov 2026 (labelled on the page)",
        "8.9": "measured: benchmarks/gae.py, one run, Nov 2026 (labelled on the page)",
        "8.7": "measured: benchmarks/gae.py, one run, Nov 2026 (labelled on the page)",
        "1.5": "measured: 1.5-2 us per numpy call (benchmarks/gae.py); setting: learning rate 1.5e-2",
        "0.1": "measured: 0.1 ms of input checks (benchmarks/gae.py); setting: epsilon 0.1 of the grid",
        "0.2": "setting: clip epsilon 0.2 of both PPOs and of the grid",
        "0.98": "setting: gamma 0.98 of the CartPole runs and of the grid",
        "0.8": "setting: lambda 0.8 of the CartPole runs and of the grid",
        "0.9": "measured: load average 0.9-1.1; setting: gamma 0.9 of the grid",
        "1.1": "measured: load average 0.9-1.1 during the runs",
        "0.45": "measured: benchmarks/ppo_cartpole.py, one run, Nov 2026 (labelled on the page)",
        "500.0": "measured: benchmarks/ppo_cartpole.py, one run, Nov 2026 (labelled on the page)",
        "8.25": "measured: benchmarks/ppo_cartpole.py, one run, Nov 2026 (labelled on the page)",
        "1.22": "measured: benchmarks/ppo_cartpole.py, one run, Nov 2026 (labelled on the page)",
        "9.14": "measured: benchmarks/ppo_cartpole.py, one run, Nov 2026 (labelled on the page)",
        "2.27": "measured: benchmarks/ppo_cartpole.py, one run, Nov 2026 (labelled on the page)",
        "489.9": "measured: benchmarks/ppo_cartpole.py, one run, Nov 2026 (labelled on the page)",
        "15.81": "measured: benchmarks/ppo_cartpole.py, one run, Nov 2026 (labelled on the page)",
        "0.134": "measured: benchmarks/ppo_cartpole.py, one run, Nov 2026 (labelled on the page)",
        "1.04": "measured: benchmarks/ppo_cartpole.py, one run, Nov 2026 (labelled on the page)",
        "9.21": "measured: benchmarks/ppo_cartpole.py, one run, Nov 2026 (labelled on the page)",
        "0.113": "measured: benchmarks/ppo_cartpole.py, one run, Nov 2026 (labelled on the page)",
        "20%": "measured: run-to-run spread of single timings on the shared machine (10-20%)",
        "0.667": "measured: benchmarks/ppo_cartpole.py, one run, Nov 2026 (labelled on the page)",
        "2.3": "measured: benchmarks/ppo_cartpole.py, one run, Nov 2026 (labelled)",
        "2.4": "measured: benchmarks/ppo_cartpole.py, Nov 2026 (labelled); numpy 2.4.6",
        "80%": "measured: trainer and CartPole timings, Nov 2026 (labelled on the page)",
        "0.995": "setting: gamma 0.995 of the grid",
        "0.5": "setting: lambda 0.5 of the grid",
        "0.95": "setting: lambda 0.95 of the grid",
        "0.3": "setting: epsilon 0.3 of the grid",
        "15.8": "measured: trainer and CartPole timings, Nov 2026 (labelled on the page)",
        "64.8": "measured: trainer and CartPole timings, Nov 2026 (labelled on the page)",
        "4.1": "measured: trainer and CartPole timings, Nov 2026 (labelled on the page)",
        "59.7": "measured: trainer and CartPole timings, Nov 2026 (labelled on the page)",
        "9.4": "measured: trainer and CartPole timings, Nov 2026 (labelled on the page)",
        "13.5": "measured: trainer and CartPole timings, Nov 2026 (labelled on the page)",
        "61.7": "measured: trainer and CartPole timings, Nov 2026 (labelled on the page)",
        "4.6": "measured: trainer and CartPole timings, Nov 2026 (labelled on the page)",
        "21.5": "measured: trainer and CartPole timings, Nov 2026 (labelled on the page)",
        "22.6": "measured: trainer and CartPole timings, Nov 2026 (labelled on the page)",
        "24.9": "measured: trainer and CartPole timings, Nov 2026 (labelled on the page)",
        "0.14": "measured: trainer and CartPole timings, Nov 2026 (labelled on the page)",
        "0.08": "measured: trainer and CartPole timings, Nov 2026 (labelled on the page)",
        "5.74": "measured: trainer and CartPole timings, Nov 2026 (labelled on the page)",
        "4.99": "measured: trainer and CartPole timings, Nov 2026 (labelled on the page)",
        "3.11": "version: Python 3.11.7 of the benchmark machine",
        "2.13": "version: torch 2.13.0 of the benchmark machine",
        "1.4": "version: gymnasium 1.4.0 of the benchmark machine",
        "2.9": "version: stable-baselines3 2.9.2 of the benchmark machine",
    },
}

_FENCE = re.compile(r"^(`{3,}|:{3,})[^\n]*\n(.*?)^\1[ \t]*$", re.S | re.M)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_ROLE = re.compile(r"\{[\w:-]+\}`[^`]*`")
_HEADING = re.compile(r"^#{1,6} .*$", re.M)
_SECTION = re.compile(
    r"(?:[Ss]ections?|§|[Cc]hapters?)\s*\d+\.\d+(?:\s*(?:,|and|-|–|to)\s*\d+\.\d+)*"
)
_NUMBER = re.compile(r"(?<![\w.\\])(\d+\.\d+|\d+(?:\.\d+)?\s*%|\d+(?:\.\d+)?\s*(?:times|×))")
_LABEL = re.compile(r"^\([\w-]+\)=\s*$|^:label:.*$|^:class:.*$|^:name:.*$", re.M)


def prose(markdown: str) -> str:
    """The prose of a markdown text: code, roles, headings and section numbers removed."""
    text = _FENCE.sub(
        lambda m: (
            ""
            if m.group(1).startswith("`") and not re.match(r"`{3,}\{", m.group(0))
            else m.group(2)
        ),
        markdown,
    )
    for pattern in (_INLINE_CODE, _ROLE, _HEADING, _SECTION, _LABEL):
        text = pattern.sub(" ", text)
    return text


def numbers(markdown: str) -> list[str]:
    """The decimal numbers, percentages and multipliers in the prose of ``markdown``,
    normalised (``78 %`` -> ``78%``, ``5 times`` -> ``5 times``)."""
    out = []
    for m in _NUMBER.finditer(prose(markdown)):
        tok = re.sub(r"\s+", " ", m.group(1)).replace(" %", "%")
        out.append(tok)
    return out


def _key(token: str) -> str:
    """The number a token declares: ``78%`` and ``5 times`` are declared as ``78%``, ``5``."""
    return re.sub(r"\s*(times|×)$", "", token)


def page(path: Path) -> tuple[list[str], dict[str, str]]:
    """(markdown cells' texts, declared inputs) of a chapter or page."""
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = [
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"]
            if c["cell_type"] == "markdown"
        ]
        declared = nb.get("metadata", {}).get("rlviz", {}).get("prose_numbers", {})
        return cells, declared
    return [path.read_text(encoding="utf-8")], MARKDOWN_INPUTS.get(path.name, {})


def problems(path: Path) -> list[str]:
    """What is wrong on one page: typed numbers not declared, declarations not used, and
    declarations without a reason."""
    cells, declared = page(path)
    found = [tok for cell in cells for tok in numbers(cell)]
    out = [
        f"{path.name}: {tok!r} is typed in the prose; glue it from the cell that computes it "
        f"(or declare it as an input with its reason)"
        for tok in dict.fromkeys(found)
        if _key(tok) not in declared
    ]
    used = {_key(tok) for tok in found}
    out += [
        f"{path.name}: {num!r} is declared an input but the prose no longer types it; remove "
        f"the declaration"
        for num in declared
        if num not in used
    ]
    out += [
        f"{path.name}: {num!r} is declared without a reason"
        for num, why in declared.items()
        if not str(why).strip()
    ]
    return out


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted([*ROOT.glob("book/*.ipynb"), *ROOT.glob("book/*.md")])
    report = [line for p in paths for line in problems(p)]
    for line in report:
        print(line)
    print(f"{len(paths)} pages, {len(report)} problems")
    return 1 if report else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
