"""The hash of rlviz's source that keys the book's execution cache.

jupyter-book caches each executed chapter keyed on its cells, not on rlviz: after a change to
rlviz a rebuild would show stale outputs. ``scripts/_env.sh`` (``rlviz_fresh_cache``) stamps
:func:`source_hash` beside ``_build/.jupyter_cache`` and clears the cache when it changes. The
file runs as a script with the standard library alone (no venv, no import of rlviz).

The trained runs are not cached here: they are data, in the run store
(:mod:`rlviz.experiments.run_store`), keyed on the code that determines them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["source_hash"]

_PACKAGE = Path(__file__).resolve().parent
_SOURCE_HASH: str | None = None


def source_hash() -> str:
    """sha256 of rlviz's source: every ``*.py`` under the package, by path, names and bytes."""
    global _SOURCE_HASH
    if _SOURCE_HASH is None:
        h = hashlib.sha256()
        for path in sorted(_PACKAGE.rglob("*.py")):
            h.update(path.relative_to(_PACKAGE).as_posix().encode())
            h.update(b"\0")
            h.update(path.read_bytes())
        _SOURCE_HASH = h.hexdigest()
    return _SOURCE_HASH


if __name__ == "__main__":  # scripts/_env.sh: rlviz_source_hash
    print(source_hash())
