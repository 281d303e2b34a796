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
MARKDOWN_INPUTS: dict[str, dict[str, str]] = {}

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
