"""The book's trained runs as data: a store of spec plus record, read by the notebooks, filled
and replayed by ``python -m rlviz runs``.

Two kinds of run (:data:`KINDS`): ``addition`` (one GRPO or PPO run on the addition task,
:class:`rlviz.experiments.run_spec.RunSpec`; its record is a TrainLog) and ``ppo-study``
(chapter 13's batch of PPO settings on CartPole trained together,
:class:`rlviz.experiments.ppo_study.StudySpec`).

Where: ``$RLVIZ_RUNS`` if set, else the ``runs/`` folder beside the package in a clone of the
repository (``runs/<kind>/<spec id>.json``); an installed wheel has no store and trains.

One file per run, diffable: its spec, the hash of the code that determines it
(:func:`code_hash`: the files the kind's module imports, :func:`determining_files`), where and
when it ran and its wall time, and its record (floats written exactly: Python writes the
shortest repr that reads back to the same float). A stored run is *fresh* when its code hash
is the current one. :func:`load_or_train` returns a fresh stored log, or trains the spec (a missing or stale
run: with a warning that names the command that stores it). With ``RLVIZ_RUNS_STRICT=1`` (CI)
a missing or stale run raises instead: the notebooks then never train a spread silently.

:func:`run_missing` trains what is missing or stale (one process per core, a progress bar,
each run written atomically as it finishes, so an interrupted call resumes where it stopped);
:func:`replay` trains a seeded sample again and compares the logs, wall-clock fields aside
(bit-identical on the same kind of machine: one torch thread, fixed seeds).
"""

from __future__ import annotations

import ast
import datetime
import hashlib
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

from rlviz.experiments import ppo_study, run_spec
from rlviz.experiments.ppo_study import StudySpec
from rlviz.experiments.run_spec import RunSpec, log_from_dict, log_to_dict, train_run

__all__ = [
    "KINDS",
    "determining_files",
    "code_hash",
    "ENV",
    "STRICT_ENV",
    "StaleRun",
    "EXECUTORS",
    "Executor",
    "Stored",
    "store_dir",
    "path_of",
    "read",
    "write",
    "status",
    "load_or_train",
    "run_missing",
    "replay",
    "compare_records",
    "sample",
]

ENV = "RLVIZ_RUNS"
STRICT_ENV = "RLVIZ_RUNS_STRICT"
_PACKAGE = Path(__file__).resolve().parents[1]
_CLONE_STORE = _PACKAGE.parent / "runs"


@dataclass(frozen=True)
class Kind:
    """A kind of stored run: its spec class, the module whose imports determine it, how it is
    trained (spec -> record of JSON values), what the reader gets (spec, record -> value), and
    the record's wall-clock fields (a replay does not compare them)."""

    spec: type
    module: str
    train: object
    value: object
    wall_clock: tuple


KINDS = {
    RunSpec.kind: Kind(
        RunSpec,
        run_spec.__name__,
        lambda spec: log_to_dict(train_run(spec)),
        lambda spec, record: log_from_dict(record),
        ("seconds", "reached_seconds"),
    ),
    StudySpec.kind: Kind(
        StudySpec,
        ppo_study.__name__,
        ppo_study.train_study,
        ppo_study.result_of,
        ("train_seconds",),
    ),
}


def _imports(path: Path) -> set[str]:
    """The rlviz modules a file imports (by name, absolute imports only)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("rlviz")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rlviz"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}  # modules imported by name
    return out


def _file(module: str) -> Path | None:
    parts = module.split(".")[1:]
    if not parts:  # the package's __init__ re-exports names; it computes nothing
        return None
    rel = Path(*parts)
    for path in (_PACKAGE / rel.with_suffix(".py"), _PACKAGE / rel / "__init__.py"):
        if path.is_file():
            return path
    return None


def determining_files(module: str) -> list[Path]:
    """The rlviz source files ``module`` is and imports, directly or not."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        path = _file(name)
        if path is None or name in seen:
            continue
        seen[name] = path
        todo.extend(_imports(path))
    return sorted(set(seen.values()))


_CODE_HASH: dict = {}


def code_hash(kind: str) -> str:
    """sha256 (first 16 hex digits) of the :func:`determining_files` of ``kind``'s module, by
    path and bytes."""
    if kind not in _CODE_HASH:
        h = hashlib.sha256()
        for path in determining_files(KINDS[kind].module):
            h.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0")
            h.update(path.read_bytes())
        _CODE_HASH[kind] = h.hexdigest()[:16]
    return _CODE_HASH[kind]


class StaleRun(RuntimeError):
    """A run the book needs is missing from the store or stale, and training is not allowed."""


def _kind(spec) -> Kind:
    kind = KINDS.get(getattr(spec, "kind", None))
    if kind is None or not isinstance(spec, kind.spec):
        raise ValueError(
            f"spec must be one of {[k.spec.__name__ for k in KINDS.values()]}, got {spec!r}"
        )
    return kind


@dataclass(frozen=True)
class Stored:
    """A stored run: its spec, the code hash it ran with, where and when, and its record."""

    spec: object
    code_hash: str
    ran: dict
    record: dict

    @property
    def fresh(self) -> bool:
        return self.code_hash == code_hash(self.spec.kind)

    @property
    def value(self):
        """What a reader gets: a TrainLog (addition) or a StudyResult (ppo-study)."""
        return _kind(self.spec).value(self.spec, self.record)


def store_dir() -> Path | None:
    """``$RLVIZ_RUNS``, else the clone's ``runs/`` if it exists, else None (no store)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    return _CLONE_STORE if _CLONE_STORE.is_dir() else None


def path_of(spec, store: Path | None = None) -> Path:
    store = store if store is not None else store_dir()
    if store is None:
        raise StaleRun(f"no run store: set {ENV} or work in a clone that has runs/")
    return Path(store) / _kind(spec).spec.kind / f"{spec.id}.json"


def read(spec, store: Path | None = None) -> Stored | None:
    """The stored run of ``spec``, or None if it is not stored."""
    try:
        path = path_of(spec, store)
    except StaleRun:
        return None
    if not path.is_file():
        return None
    d = json.loads(path.read_text())
    if type(spec).from_dict(d["spec"]) != spec:
        raise ValueError(f"{path} holds another spec than {spec.as_dict()}")
    return Stored(spec, d["code_hash"], d["ran"], d["record"])


def _dumps(d: dict) -> str:
    """One line per top-level key and per record field (a study's logs: per update), so a
    diff shows what moved."""
    lines = []
    for key in ("spec", "code_hash", "ran", "record"):
        value = d[key]
        if key == "record":
            fields = []
            for k, v in sorted(value.items()):
                if isinstance(v, list) and v and isinstance(v[0], list):
                    rows = ",\n".join(f"   {json.dumps(row)}" for row in v)
                    fields.append(f"  {json.dumps(k)}: [\n{rows}\n  ]")
                else:
                    fields.append(f"  {json.dumps(k)}: {json.dumps(v)}")
            lines.append(' "record": {\n' + ",\n".join(fields) + "\n }")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value, sort_keys=True)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _versions() -> dict:
    import gymnasium
    import numpy
    import torch

    return {
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "gymnasium": gymnasium.__version__,
    }


def write(spec, record: dict, wall_s: float, store: Path | None = None) -> Path:
    """Store ``record`` as the run of ``spec`` (atomically: a temporary file renamed)."""
    path = path_of(spec, store)
    path.parent.mkdir(parents=True, exist_ok=True)
    ran = {
        "at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        **_versions(),
        "wall_s": round(wall_s, 2),
    }
    text = _dumps(
        {"spec": spec.as_dict(), "code_hash": code_hash(spec.kind), "ran": ran, "record": record}
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the store private to its writer
    os.replace(tmp, path)
    return path


def status(spec, store: Path | None = None) -> str:
    """``"fresh"``, ``"stale"`` (stored with another code hash) or ``"missing"``."""
    stored = read(spec, store)
    if stored is None:
        return "missing"
    return "fresh" if stored.fresh else "stale"


_COMMAND = "python -m rlviz runs run"


def load_or_train(spec, store: Path | None = None):
    """What the fresh stored run of ``spec`` holds (a TrainLog, or a StudyResult); else train
    it (warning: missing or stale), or with ``RLVIZ_RUNS_STRICT=1`` raise :class:`StaleRun`."""
    kind = _kind(spec)
    stored = read(spec, store)
    if stored is not None and stored.fresh:
        return stored.value
    what = "missing from the run store" if stored is None else "stale (rlviz's trainer changed)"
    message = f"run {spec.kind}/{spec.id} is {what}; `{_COMMAND}` stores it"
    if os.environ.get(STRICT_ENV) == "1":
        raise StaleRun(message)
    if store_dir() is not None:
        warnings.warn(message + "; training it now", stacklevel=2)
    return kind.value(spec, kind.train(spec))


def _train_timed(kind: str, spec_dict: dict) -> tuple[str, dict, dict, float]:
    """A worker's job: train one spec; its kind, the spec and the record as dicts, and the
    wall time."""
    spec = KINDS[kind].spec.from_dict(spec_dict)
    t0 = time.perf_counter()
    record = KINDS[kind].train(spec)
    return kind, spec_dict, record, time.perf_counter() - t0


EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Executor:
    """Where runs are trained: ``"local"`` (``jobs`` processes on this machine, default one
    per core) or ``"ray"`` (Ray tasks of one CPU each: a local Ray started with ``jobs`` CPUs,
    or the cluster at ``address``, whose CPUs decide how many run at once; rlviz is shipped to
    its workers as a ``py_modules`` runtime environment)."""

    name: str = "local"
    jobs: int | None = None
    address: str | None = None

    def __post_init__(self):
        if self.name not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {self.name!r}")
        if self.jobs is not None and not (isinstance(self.jobs, int) and self.jobs >= 1):
            raise ValueError(f"jobs must be an integer >= 1 or None, got {self.jobs!r}")
        if self.address is not None and self.name != "ray":
            raise ValueError(f"address is for the ray executor, got it with {self.name!r}")
        if self.address is not None and self.jobs is not None:
            raise ValueError(
                f"jobs is for a local run (a cluster's CPUs decide), got jobs={self.jobs} "
                f"with address={self.address!r}"
            )

    @property
    def processes(self) -> int:
        return self.jobs if self.jobs is not None else (os.cpu_count() or 1)


def _local(specs: list, n: int):
    if n == 1:
        for spec in specs:
            yield _train_timed(spec.kind, spec.as_dict())
        return
    with ProcessPoolExecutor(n, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_train_timed, s.kind, s.as_dict()) for s in specs]
        for fut in as_completed(futures):
            yield fut.result()


def _ray(specs: list, executor: Executor):
    import ray

    if executor.address is None:
        ray.init(num_cpus=executor.processes, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=executor.address, runtime_env={"py_modules": [str(_PACKAGE)]})
    try:
        task = ray.remote(num_cpus=1)(_train_timed)
        pending = [task.remote(s.kind, s.as_dict()) for s in specs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        ray.shutdown()


def _run(specs: list, executor: Executor, desc: str, progress: bool):
    """Yield ``(spec, record, wall_s)`` for each spec as it finishes, on ``executor`` (the
    longest first: a batched study before the single runs)."""
    from tqdm import tqdm

    specs = sorted(specs, key=lambda s: s.kind != StudySpec.kind)
    if not specs:
        return
    bar = tqdm(total=len(specs), desc=desc, unit="run", disable=not progress)
    runs = _local(specs, executor.processes) if executor.name == "local" else _ray(specs, executor)
    try:
        for kind, d, record, wall in runs:
            bar.update()
            yield KINDS[kind].spec.from_dict(d), record, wall
    finally:
        bar.close()


def _executor(executor, jobs) -> Executor:
    if isinstance(executor, Executor):
        if jobs is not None:
            raise ValueError("jobs is set on the Executor, got it twice")
        return executor
    return Executor(executor, jobs)


def run_missing(
    specs: Iterable,
    *,
    jobs: int | None = None,
    everything: bool = False,
    store: Path | None = None,
    progress: bool = True,
    executor: str | Executor = "local",
) -> list:
    """Train and store each spec that is missing or stale (every one with ``everything``) on
    ``executor`` (:class:`Executor`; ``jobs`` processes, default one per core); return the
    specs trained. Each run is written when it finishes, so an interrupted call loses only the
    runs in flight."""
    ex = _executor(executor, jobs)
    todo = [s for s in dict.fromkeys(specs) if everything or status(s, store) != "fresh"]
    for spec, record, wall in _run(todo, ex, "training", progress):
        write(spec, record, wall, store)
    return todo


def compare_records(kind: str, stored: dict, fresh: dict) -> list[str]:
    """The fields (``kind``'s wall-clock ones aside) in which two records differ, with the
    start of each value."""
    keys = sorted(set(stored) | set(fresh))
    return [
        f"{k}: stored {stored.get(k)!r:.80} != replayed {fresh.get(k)!r:.80}"
        for k in keys
        if k not in KINDS[kind].wall_clock and stored.get(k) != fresh.get(k)
    ]


def sample(groups: dict[str, list], extra: int = 0, seed: int = 0) -> list:
    """One spec of each group (e.g. each chapter's variant), drawn with ``seed``, and ``extra``
    more from all of them; each spec once."""
    rng = random.Random(seed)
    # two groups may share a run (the same config in two chapters): it is replayed once
    chosen = list(
        dict.fromkeys(
            rng.choice(sorted(g, key=lambda s: s.id)) for _, g in sorted(groups.items()) if g
        )
    )
    rest = sorted({s for g in groups.values() for s in g} - set(chosen), key=lambda s: s.id)
    return chosen + rng.sample(rest, min(extra, len(rest)))


def replay(
    specs: list,
    *,
    jobs: int | None = None,
    store: Path | None = None,
    progress: bool = True,
    executor: str | Executor = "local",
) -> dict[str, list[str]]:
    """Train each spec again and compare with its stored record: ``{spec id: differences}``
    for the runs that differ or are not stored fresh (empty: the store is reproduced)."""
    ex = _executor(executor, jobs)
    problems: dict[str, list[str]] = {}
    stored = {}  # spec id -> the record read once, before training
    for spec in specs:
        st = read(spec, store)
        if st is None or not st.fresh:
            problems[spec.id] = [f"not stored fresh ({'missing' if st is None else 'stale'})"]
        else:
            stored[spec.id] = st.record
    todo = [s for s in specs if s.id in stored]
    for spec, record, _ in _run(todo, ex, "replaying", progress):
        diff = compare_records(spec.kind, stored[spec.id], record)
        if diff:
            problems[spec.id] = diff
    return problems
