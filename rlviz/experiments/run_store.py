"""The book's trained runs as data: a store of :class:`~rlviz.experiments.run_spec.RunSpec`
plus log, read by the notebooks, filled and replayed by ``python -m rlviz runs``.

Where: ``$RLVIZ_RUNS`` if set, else the ``runs/`` folder beside the package in a clone of the
repository (``runs/addition/<spec id>.json``); an installed wheel has no store and trains.

One file per run, diffable: its spec, the hash of the code that determines it
(:func:`rlviz.experiments.run_spec.code_hash`), where and when it ran and its wall time, and
its log (floats written exactly). A stored run is *fresh* when its code hash is the current
one. :func:`load_or_train` returns a fresh stored log, or trains the spec (a missing or stale
run: with a warning that names the command that stores it). With ``RLVIZ_RUNS_STRICT=1`` (CI)
a missing or stale run raises instead: the notebooks then never train a spread silently.

:func:`run_missing` trains what is missing or stale (one process per core, a progress bar,
each run written atomically as it finishes, so an interrupted call resumes where it stopped);
:func:`replay` trains a seeded sample again and compares the logs, wall-clock fields aside
(bit-identical on the same kind of machine: one torch thread, fixed seeds).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import random
import tempfile
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from rlviz.agents.addition_task import TrainLog
from rlviz.experiments.run_spec import (
    RunSpec,
    code_hash,
    log_from_dict,
    log_to_dict,
    train_run,
)

__all__ = [
    "ENV",
    "STRICT_ENV",
    "WALL_CLOCK",
    "StaleRun",
    "Stored",
    "store_dir",
    "path_of",
    "read",
    "write",
    "status",
    "load_or_train",
    "run_missing",
    "replay",
    "compare_logs",
]

ENV = "RLVIZ_RUNS"
STRICT_ENV = "RLVIZ_RUNS_STRICT"
WALL_CLOCK = ("seconds", "reached_seconds")  # a log's fields that replays do not compare
_CLONE_STORE = Path(__file__).resolve().parents[2] / "runs"


class StaleRun(RuntimeError):
    """A run the book needs is missing from the store or stale, and training is not allowed."""


@dataclass(frozen=True)
class Stored:
    """A stored run: its spec, the code hash it ran with, where and when, and its log."""

    spec: RunSpec
    code_hash: str
    ran: dict
    log: TrainLog

    @property
    def fresh(self) -> bool:
        return self.code_hash == code_hash()


def store_dir() -> Path | None:
    """``$RLVIZ_RUNS``, else the clone's ``runs/`` if it exists, else None (no store)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    return _CLONE_STORE if _CLONE_STORE.is_dir() else None


def path_of(spec: RunSpec, store: Path | None = None) -> Path:
    store = store if store is not None else store_dir()
    if store is None:
        raise StaleRun(f"no run store: set {ENV} or work in a clone that has runs/")
    return Path(store) / "addition" / f"{spec.id}.json"


def read(spec: RunSpec, store: Path | None = None) -> Stored | None:
    """The stored run of ``spec``, or None if it is not stored."""
    try:
        path = path_of(spec, store)
    except StaleRun:
        return None
    if not path.is_file():
        return None
    d = json.loads(path.read_text())
    if RunSpec.from_dict(d["spec"]) != spec:
        raise ValueError(f"{path} holds another spec than {spec.as_dict()}")
    return Stored(spec, d["code_hash"], d["ran"], log_from_dict(d["log"]))


def _dumps(d: dict) -> str:
    """One line per top-level key (one per log field): compact, and a diff shows what moved."""
    lines = []
    for key in ("spec", "code_hash", "ran", "log"):
        value = d[key]
        if key == "log":
            inner = ",\n".join(
                f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(value.items())
            )
            lines.append(f' "log": {{\n{inner}\n }}')
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value, sort_keys=True)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write(spec: RunSpec, log: TrainLog, wall_s: float, store: Path | None = None) -> Path:
    """Store ``log`` as the run of ``spec`` (atomically: a temporary file renamed)."""
    import torch

    path = path_of(spec, store)
    path.parent.mkdir(parents=True, exist_ok=True)
    ran = {
        "at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "wall_s": round(wall_s, 2),
    }
    text = _dumps(
        {"spec": spec.as_dict(), "code_hash": code_hash(), "ran": ran, "log": log_to_dict(log)}
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def status(spec: RunSpec, store: Path | None = None) -> str:
    """``"fresh"``, ``"stale"`` (stored with another code hash) or ``"missing"``."""
    stored = read(spec, store)
    if stored is None:
        return "missing"
    return "fresh" if stored.fresh else "stale"


_COMMAND = "python -m rlviz runs run"


def load_or_train(spec: RunSpec, store: Path | None = None) -> TrainLog:
    """The fresh stored log of ``spec``; else train it (warning: missing or stale), or with
    ``RLVIZ_RUNS_STRICT=1`` raise :class:`StaleRun`."""
    stored = read(spec, store)
    if stored is not None and stored.fresh:
        return stored.log
    what = "missing from the run store" if stored is None else "stale (rlviz's trainer changed)"
    message = f"run {spec.id} {spec.as_dict()} is {what}; `{_COMMAND}` stores it"
    if os.environ.get(STRICT_ENV) == "1":
        raise StaleRun(message)
    if store_dir() is not None:
        warnings.warn(message + "; training it now", stacklevel=2)
    return train_run(spec)


def _train_timed(spec_dict: dict) -> tuple[dict, dict, float]:
    """A worker's job: train one spec; the spec and log as dicts, and its wall time."""
    spec = RunSpec.from_dict(spec_dict)
    t0 = time.perf_counter()
    log = train_run(spec)
    return spec_dict, log_to_dict(log), time.perf_counter() - t0


def _run(specs: list[RunSpec], jobs: int, desc: str, progress: bool):
    """Yield ``(spec, log, wall_s)`` for each spec as it finishes, on ``jobs`` processes."""
    from tqdm import tqdm

    bar = tqdm(total=len(specs), desc=desc, unit="run", disable=not progress)
    try:
        if jobs == 1:
            for spec in specs:
                d, log, wall = _train_timed(spec.as_dict())
                bar.update()
                yield spec, log_from_dict(log), wall
            return
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_train_timed, s.as_dict()) for s in specs]
            for fut in as_completed(futures):
                d, log, wall = fut.result()
                bar.update()
                yield RunSpec.from_dict(d), log_from_dict(log), wall
    finally:
        bar.close()


def _jobs(jobs: int | None) -> int:
    n = jobs if jobs is not None else (os.cpu_count() or 1)
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    return n


def run_missing(
    specs: Iterable[RunSpec],
    *,
    jobs: int | None = None,
    everything: bool = False,
    store: Path | None = None,
    progress: bool = True,
) -> list[RunSpec]:
    """Train and store each spec that is missing or stale (every one with ``everything``),
    on ``jobs`` processes (default: one per core); return the specs trained. Each run is
    written when it finishes, so an interrupted call loses only the runs in flight."""
    todo = [s for s in dict.fromkeys(specs) if everything or status(s, store) != "fresh"]
    for spec, log, wall in _run(todo, _jobs(jobs), "training", progress):
        write(spec, log, wall, store)
    return todo


def compare_logs(stored: TrainLog, fresh: TrainLog) -> list[str]:
    """The fields (wall-clock ones aside) in which two logs differ, with the first values."""
    a, b = log_to_dict(stored), log_to_dict(fresh)
    return [
        f"{k}: stored {a[k]!r:.80} != replayed {b[k]!r:.80}"
        for k in a
        if k not in WALL_CLOCK and a[k] != b[k]
    ]


def sample(groups: dict[str, list[RunSpec]], extra: int = 0, seed: int = 0) -> list[RunSpec]:
    """One spec of each group (e.g. each chapter's variant), drawn with ``seed``, and ``extra``
    more from all of them."""
    rng = random.Random(seed)
    chosen = [rng.choice(sorted(g, key=lambda s: s.id)) for _, g in sorted(groups.items()) if g]
    rest = sorted({s for g in groups.values() for s in g} - set(chosen), key=lambda s: s.id)
    return chosen + rng.sample(rest, min(extra, len(rest)))


def replay(
    specs: list[RunSpec],
    *,
    jobs: int | None = None,
    store: Path | None = None,
    progress: bool = True,
) -> dict[str, list[str]]:
    """Train each spec again and compare with its stored log: ``{spec id: differences}`` for
    the runs that differ or are not stored fresh (empty: the store is reproduced)."""
    problems: dict[str, list[str]] = {}
    todo = []
    for spec in specs:
        st = read(spec, store)
        if st is None or not st.fresh:
            problems[spec.id] = [f"not stored fresh ({status(spec, store)})"]
        else:
            todo.append(spec)
    for spec, log, _ in _run(todo, _jobs(jobs), "replaying", progress):
        diff = compare_logs(read(spec, store).log, log)
        if diff:
            problems[spec.id] = diff
    return problems
