"""The run store (rlviz.experiments.run_store, run_spec, book_runs): specs as values, the code
hash of what determines a run, stale and missing runs, strict mode, replay and its negative
control, and the committed store itself (every run the book reads is stored fresh)."""

import json
import math
import shutil

import pytest

from rlviz.agents.addition_task import TrainLog
from rlviz.agents.grpo import GRPOConfig
from rlviz.agents.token_ppo import PPOConfig
from rlviz.experiments import book_runs, ch13, ppo_study, run_spec, run_store
from rlviz.experiments.run_spec import RunSpec, spec_of
from rlviz.fn.offpolicy import OffPolicy


def _log(**change):
    d = dict(
        step=[0, 10],
        seconds=[0.0, 0.37],
        samples=[0, 2560],
        held_out=[0.5, 0.75],
        train=[0.5, 0.8],
        entropy=[0.1, 0.2],
        reached_step=None,
        reached_seconds=None,
        capped=None,
    )
    return TrainLog(**{**d, **change})


# ---------------------------------------------------------------- specs
def test_spec_holds_only_what_differs_from_the_defaults():
    cfg = GRPOConfig(term="token", loss_agg="token-mean", seed=7, max_steps=3, eval_every=2)
    spec = spec_of(cfg, 30, 2, 1)
    assert spec.as_dict()["changes"] == {"loss_agg": "token-mean", "term": "token"}
    assert (spec.steps, spec.split, spec.seed, spec.eval_every) == (30, 2, 1, 10)
    # the config's own per-run fields are the spec's, not the config's
    assert spec_of(GRPOConfig(term="token", loss_agg="token-mean"), 30, 2, 1) == spec
    got = spec.config()
    assert (got.seed, got.max_steps, got.eval_every, got.stop_at_target) == (1, 30, 10, False)
    assert math.isinf(got.max_seconds)


def test_spec_round_trips_through_json_with_an_off_policy_weight():
    cfg = GRPOConfig(
        term="token",
        loss_agg="token-mean",
        sampler_delta=3.0,
        off_policy=OffPolicy(correction="tis", level="sequence", cap=2.0),
    )
    spec = spec_of(cfg, 30, 4, 2)
    back = RunSpec.from_dict(json.loads(json.dumps(spec.as_dict())))
    assert back == spec and back.id == spec.id and hash(back) == hash(spec)
    assert back.config() == spec.config()
    assert spec_of(PPOConfig(), 40, 0, 0).trainer == "ppo"
    # another value, another id
    assert spec_of(cfg, 30, 4, 1).id != spec.id
    assert spec_of(GRPOConfig(epsilon=0.3), 30, 4, 2).id != spec_of(GRPOConfig(), 30, 4, 2).id


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: RunSpec("sac", (), 10, 0, 0), "trainer"),
        (lambda: RunSpec("grpo", (), 0, 0, 0), "steps"),
        (lambda: RunSpec("grpo", (("seed", 3),), 10, 0, 0), "changes"),
        (lambda: RunSpec("grpo", (("no_such", 3),), 10, 0, 0), "changes"),
        (lambda: RunSpec("grpo", (("epsilon", -1.0),), 10, 0, 0), "epsilon"),
        (lambda: spec_of({"epsilon": 0.2}, 10, 0, 0), "config"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_the_determining_files_are_the_trainers_not_the_tables():
    files = run_store.determining_files(run_store.KINDS["addition"].module)
    names = {p.relative_to(run_store._PACKAGE).as_posix() for p in files}
    for needed in (
        "experiments/run_spec.py",
        "agents/grpo.py",
        "agents/token_ppo.py",
        "agents/addition_task.py",
        "fn/ratios.py",
        "fn/grpo_aggregation.py",
        "fn/offpolicy.py",
    ):
        assert needed in names
    for not_needed in (
        "experiments/run_store.py",
        "experiments/addition_runs.py",
        "experiments/ch15.py",
        "figures/training_curves.py",
        "jupyter/widgets.py",
    ):
        assert not_needed not in names
    assert len(run_store.code_hash("addition")) == 16
    study = {
        p.relative_to(run_store._PACKAGE).as_posix()
        for p in run_store.determining_files(run_store.KINDS["ppo-study"].module)
    }
    assert {"experiments/ppo_study.py", "agents/ppo.py", "agents/cartpole.py"} <= study
    assert "agents/grpo.py" not in study and "experiments/ch13.py" not in study


# ---------------------------------------------------------------- the store
SPEC = spec_of(PPOConfig(), 40, 0, 0)


def test_write_then_read_is_exact_and_fresh(tmp_path):
    log = _log(held_out=[0.1 + 0.2, 1 / 3])  # floats that need every digit
    path = run_store.write(SPEC, run_spec.log_to_dict(log), 1.234, tmp_path)
    assert path == tmp_path / "addition" / f"{SPEC.id}.json"
    got = run_store.read(SPEC, tmp_path)
    assert got.value == log and got.fresh and got.ran["wall_s"] == 1.23
    assert {"torch", "numpy", "gymnasium", "python", "machine", "at"} <= set(got.ran)
    assert run_store.status(SPEC, tmp_path) == "fresh"
    assert run_store.status(spec_of(PPOConfig(), 40, 0, 1), tmp_path) == "missing"
    assert not list((tmp_path / "addition").glob(".*.tmp"))  # written atomically


def _doctor(tmp_path, spec, edit):
    path = run_store.path_of(spec, tmp_path)
    d = json.loads(path.read_text())
    edit(d)
    path.write_text(json.dumps(d))


def test_a_stale_code_hash_is_reported_and_not_read(tmp_path, monkeypatch):
    run_store.write(SPEC, run_spec.log_to_dict(_log()), 1.0, tmp_path)
    _doctor(tmp_path, SPEC, lambda d: d.update(code_hash="0" * 16))
    assert run_store.status(SPEC, tmp_path) == "stale"
    monkeypatch.setenv(run_store.STRICT_ENV, "1")
    with pytest.raises(run_store.StaleRun, match=f"{SPEC.id}.*stale.*python -m rlviz runs run"):
        run_store.load_or_train(SPEC, tmp_path)


def test_a_missing_run_raises_in_strict_mode_and_trains_with_a_warning_otherwise(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(run_store.STRICT_ENV, "1")
    with pytest.raises(run_store.StaleRun, match="missing"):
        run_store.load_or_train(SPEC, tmp_path)
    monkeypatch.delenv(run_store.STRICT_ENV)
    monkeypatch.setenv(run_store.ENV, str(tmp_path))
    trained = []
    monkeypatch.setattr(run_store, "train_run", lambda spec: trained.append(spec) or _log())
    with pytest.warns(UserWarning, match="missing from the run store"):
        assert run_store.load_or_train(SPEC, tmp_path) == _log()
    assert trained == [SPEC]


def test_a_file_holding_another_spec_is_refused(tmp_path):
    other = spec_of(PPOConfig(), 40, 0, 1)
    run_store.write(other, run_spec.log_to_dict(_log()), 1.0, tmp_path)
    shutil.copy(run_store.path_of(other, tmp_path), run_store.path_of(SPEC, tmp_path))
    with pytest.raises(ValueError, match="another spec"):
        run_store.read(SPEC, tmp_path)


def _compare(a, b):
    return run_store.compare_records("addition", run_spec.log_to_dict(a), run_spec.log_to_dict(b))


def test_compare_records_ignores_wall_clock_and_nothing_else():
    assert _compare(_log(), _log(seconds=[0.0, 9.9], reached_seconds=3.0)) == []
    for field, value in [
        ("held_out", [0.5, 0.75 + 2**-50]),
        ("step", [0, 11]),
        ("entropy", [0.1, 0.2000001]),
        ("reached_step", 10),
        ("capped", 0.01),
    ]:
        diff = _compare(_log(), _log(**{field: value}))
        assert len(diff) == 1 and diff[0].startswith(field)


def test_sample_takes_one_run_of_every_group_reproducibly():
    groups = book_runs.book_groups()
    a = run_store.sample(groups, extra=3, seed=5)
    assert a == run_store.sample(groups, extra=3, seed=5)
    assert len(set(a)) == len(a) and len(groups) + 3 - 2 <= len(a) <= len(groups) + 3
    for name, group in groups.items():
        assert any(s in group for s in a), name
    assert run_store.sample(groups, seed=6) != run_store.sample(groups, seed=5)


def test_replay_reproduces_a_run_and_rejects_a_doctored_log(tmp_path):
    """The replay stage's negative control: the stored log of one run, trained here, equals a
    replay; with one held-out success changed by 1e-6 the replay reports that field."""
    run_store.run_missing([SPEC], jobs=1, store=tmp_path, progress=False)
    assert run_store.replay([SPEC], jobs=1, store=tmp_path, progress=False) == {}
    _doctor(
        tmp_path,
        SPEC,
        lambda d: d["record"]["held_out"].__setitem__(-1, d["record"]["held_out"][-1] + 1e-6),
    )
    problems = run_store.replay([SPEC], jobs=1, store=tmp_path, progress=False)
    assert list(problems) == [SPEC.id] and problems[SPEC.id][0].startswith("held_out")


def test_run_missing_skips_fresh_runs(tmp_path, monkeypatch):
    run_store.write(SPEC, run_spec.log_to_dict(_log()), 1.0, tmp_path)
    other = spec_of(PPOConfig(), 40, 0, 1)
    fake = lambda kind, d: (kind, d, run_spec.log_to_dict(_log()), 0.5)  # noqa: E731
    monkeypatch.setattr(run_store, "_train_timed", fake)
    assert run_store.run_missing([SPEC, other], jobs=1, store=tmp_path, progress=False) == [other]
    assert run_store.status(other, tmp_path) == "fresh"


# ---------------------------------------------------------------- the committed store
def test_every_run_the_book_reads_is_stored_fresh():
    """Fails when a trainer changed after the store was written (its code hash is stale) or a
    chapter gained a run: `python -m rlviz runs run` trains and stores what is missing."""
    store = run_store.store_dir()
    assert store is not None and store.is_dir(), "no run store: runs/ is missing"
    states = {s.id: run_store.status(s) for s in book_runs.book_specs()}
    bad = {k: v for k, v in states.items() if v != "fresh"}
    assert not bad, f"{len(bad)} of {len(states)} runs not fresh, e.g. {list(bad.items())[:3]}"


def test_the_store_holds_no_run_the_book_does_not_read():
    wanted = {s.id for s in book_runs.book_specs()}
    stored = {p.stem for p in run_store.store_dir().glob("*/*.json")}
    assert stored - wanted == set(), "stored runs no chapter reads (delete them)"


# ---------------------------------------------------------------- chapter 13's study
def test_study_spec_round_trips_and_refuses_bad_rows():
    small = ch13.study(book_seeds=(0, 1), seeds=(0,), total_steps=512)
    spec = ch13.study_run_spec(small)
    assert spec.kind == "ppo-study" and spec.sampled_rows == (0, 1)
    assert ppo_study.StudySpec.from_dict(json.loads(json.dumps(spec.as_dict()))) == spec
    assert spec.configs() == small.configs
    with pytest.raises(ValueError, match="sampled_rows"):
        ppo_study.study_spec(small.configs, sampled_rows=(len(small.configs),))
    with pytest.raises(ValueError, match="configs must be"):
        ppo_study.study_spec([GRPOConfig()])


def test_a_study_is_stored_read_and_replayed(tmp_path):
    """A small study (3 settings, 2 updates): stored, read back as the chapter reads it, equal
    to a replay; a doctored return is rejected."""
    small = ch13.study(book_seeds=(0, 1), seeds=(0,), total_steps=512)
    configs = small.configs[:3]
    spec = ppo_study.study_spec(configs, sampled_rows=(0,), episodes=3)
    run_store.run_missing([spec], jobs=1, store=tmp_path, progress=False)
    got = run_store.read(spec, tmp_path).value
    assert got.result.log("return").shape == (configs[0].updates, 3)
    assert got.greedy.shape == (3,) and got.sampled.shape == (1,)
    assert run_store.replay([spec], jobs=1, store=tmp_path, progress=False) == {}

    def edit(d):
        d["record"]["return"][-1][0] += 1.0

    _doctor(tmp_path, spec, edit)
    problems = run_store.replay([spec], jobs=1, store=tmp_path, progress=False)
    assert problems[spec.id][0].startswith("return")


# ---------------------------------------------------------------- executors
@pytest.mark.parametrize(
    "args, field",
    [
        (("cluster",), "executor"),
        (("local", 0), "jobs"),
        (("local", None, "10.0.0.1:6379"), "address is for the ray executor"),
        (("ray", 2, "10.0.0.1:6379"), "jobs is for a local run"),
    ],
)
def test_bad_executors_are_refused(args, field):
    with pytest.raises(ValueError, match=field):
        run_store.Executor(*args)


def test_executor_and_jobs_given_twice_are_refused(tmp_path):
    with pytest.raises(ValueError, match="twice"):
        run_store.run_missing(
            [SPEC], jobs=2, executor=run_store.Executor("local", 1), store=tmp_path
        )


@pytest.mark.slow
def test_a_sweep_on_a_local_ray_equals_the_local_executor(tmp_path):
    """Two short runs (one GRPO, one PPO) trained by the local executor (two processes) and by
    a local Ray with 2 CPUs: the records are equal, wall-clock fields aside."""
    pytest.importorskip("ray", reason="ray is in the lock; this runs wherever it is installed")
    specs = [spec_of(GRPOConfig(prompts_per_step=4), 3, 1, 0), spec_of(PPOConfig(), 2, 2, 1)]
    local, ray_store = tmp_path / "local", tmp_path / "ray"
    run_store.run_missing(specs, jobs=2, store=local, progress=False)
    run_store.run_missing(
        specs, executor=run_store.Executor("ray", 2), store=ray_store, progress=False
    )
    for spec in specs:
        a, b = run_store.read(spec, local), run_store.read(spec, ray_store)
        assert a.fresh and b.fresh
        assert run_store.compare_records(spec.kind, a.record, b.record) == []
        assert a.record["held_out"] == b.record["held_out"] and len(a.record["held_out"]) >= 2
