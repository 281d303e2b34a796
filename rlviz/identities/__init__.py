"""The book's identity checks, one module per chapter, registered in :mod:`rlviz.verify`.

Importing this package loads every chapter's module, so the whole registry is available:

>>> from rlviz import identities
>>> identities.check("ch1.return_recursion")  # doctest: +SKIP

``check``, ``run`` and ``run_all`` are :mod:`rlviz.verify`'s, re-exported here.
"""

from __future__ import annotations

import importlib
import pkgutil

from rlviz.verify import check, registry, run, run_all

__all__ = ["check", "run", "run_all", "registry", "CHAPTERS"]

CHAPTERS = tuple(
    importlib.import_module(f"{__name__}.{m.name}")
    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
    if m.name.startswith("ch")
)
