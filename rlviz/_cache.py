"""A cache on disk for the book's trained experiments, keyed on rlviz's own source.

The test command executes every chapter three times (the book build, nbval, the JupyterLab
test), and the trained spreads of chapters 13-17 are most of that time. With
``RLVIZ_CACHE_DIR`` set (``scripts/test-all.sh`` and ``scripts/build-site.sh`` set it to
``_build/.rlviz-results``), a function decorated with :func:`disk_cached` stores its result
there and returns the stored one when called again with the same arguments by the same rlviz:
the key holds a hash of every ``*.py`` file of the package, so any change to rlviz's code
misses. Unset (a reader's notebook, the unit tests), nothing is stored and every call computes.

The decorated functions are seeded and deterministic (one torch thread), so a stored result is
the result a fresh call would give; nbval's comparison of the printed tables is unaffected.

Two processes that need the same entry at once (the book build and nbval run side by side) do
not both compute it: the first takes a lock on the entry (``fcntl.flock`` on ``<entry>.lock``,
where the platform has it), the second waits for it and reads the stored result.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
import tempfile
from pathlib import Path

__all__ = ["ENV", "disk_cached", "source_hash", "cache_key"]

ENV = "RLVIZ_CACHE_DIR"
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


def cache_key(fn, args: tuple, kwargs: dict) -> str:
    """The file name of a call: the function's name and a hash of (rlviz's source, the
    function, its arguments by ``repr``, keywords sorted)."""
    spec = repr((source_hash(), fn.__module__, fn.__qualname__, args, sorted(kwargs.items())))
    return f"{fn.__module__}.{fn.__qualname__}-{hashlib.sha256(spec.encode()).hexdigest()[:24]}"


_MISSING = object()


def _read(path: Path):
    """The stored result at ``path``, or ``_MISSING`` (absent, or unreadable: an older class
    layout, which is then computed again)."""
    if not path.exists():
        return _MISSING
    try:
        return pickle.loads(path.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return _MISSING


@contextlib.contextmanager
def _locked(lock: Path):
    """An exclusive lock on the file ``lock`` for the duration (blocking); a no-op where
    ``fcntl`` is missing (Windows: the entry may then be computed twice, never read half-written)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def disk_cached(fn):
    """Decorate ``fn`` (arguments with a stable ``repr``: numbers, strings, tuples, dicts) so
    that with ``RLVIZ_CACHE_DIR`` set its results are pickled there and reused (see the module
    docstring). Writes are atomic (a temporary file renamed), so two processes (the book build
    and nbval run side by side) can fill the same cache."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        folder = os.environ.get(ENV)
        if not folder:
            return fn(*args, **kwargs)
        path = Path(folder) / (cache_key(fn, args, kwargs) + ".pkl")
        stored = _read(path)
        if stored is not _MISSING:
            return stored
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path.with_suffix(".lock")):
            stored = _read(path)  # another process may have computed it while we waited
            if stored is not _MISSING:
                return stored
            out = fn(*args, **kwargs)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                pickle.dump(out, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        return out

    wrapper.uncached = fn
    return wrapper


if __name__ == "__main__":  # scripts/_env.sh: rlviz_source_hash
    print(source_hash())
