"""rlviz._cache.disk_cached: off without RLVIZ_CACHE_DIR; with it, one computation per
(rlviz source, function, arguments), reused across calls and processes."""

import pickle

import pytest

from rlviz import _cache


def _counting():
    calls = []

    @_cache.disk_cached
    def f(a, b=1, **change):
        calls.append((a, b, change))
        return {"a": a, "b": b, **change}

    return f, calls


def test_off_without_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv(_cache.ENV, raising=False)
    f, calls = _counting()
    assert f(1) == f(1) == {"a": 1, "b": 1}
    assert len(calls) == 2  # computed each time, nothing written
    assert not list(tmp_path.iterdir())


def test_one_computation_per_arguments(monkeypatch, tmp_path):
    monkeypatch.setenv(_cache.ENV, str(tmp_path))
    f, calls = _counting()
    assert f(1, x=0.5) == {"a": 1, "b": 1, "x": 0.5}
    assert f(1, x=0.5) == {"a": 1, "b": 1, "x": 0.5}
    assert len(calls) == 1
    f(1, x=0.25)  # another keyword value
    f(2, x=0.5)  # another argument
    f(1, 2, x=0.5)
    assert len(calls) == 4
    assert len(list(tmp_path.glob("*.pkl"))) == 4
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind


def test_a_change_to_rlvizs_source_misses(monkeypatch, tmp_path):
    monkeypatch.setenv(_cache.ENV, str(tmp_path))
    f, calls = _counting()
    f(1)
    monkeypatch.setattr(_cache, "_SOURCE_HASH", "another rlviz")
    f(1)
    assert len(calls) == 2


def test_an_unreadable_entry_is_computed_again(monkeypatch, tmp_path):
    monkeypatch.setenv(_cache.ENV, str(tmp_path))
    f, calls = _counting()
    f(3)
    (entry,) = tmp_path.glob("*.pkl")
    entry.write_bytes(b"not a pickle")
    assert f(3) == {"a": 3, "b": 1}
    assert len(calls) == 2
    assert pickle.loads(entry.read_bytes()) == {"a": 3, "b": 1}


def test_source_hash_covers_the_package():
    h = _cache.source_hash()
    assert len(h) == 64 and h == _cache.source_hash()


@pytest.mark.parametrize("module, name", [("addition_runs", "run_config"), ("ch14", "run_grid")])
def test_the_trained_spreads_are_cached(module, name):
    import importlib

    mod = importlib.import_module(f"rlviz.experiments.{module}")
    assert getattr(mod, name).uncached.__name__ == name


def test_two_processes_compute_an_entry_once(tmp_path):
    """The second of two processes asking for the same entry at once waits for the first's lock
    and reads its result instead of computing it again (the book build and nbval side by side)."""
    import subprocess
    import sys
    import textwrap

    log = tmp_path / "calls.log"
    script = textwrap.dedent(
        f"""
        import time
        from rlviz import _cache

        @_cache.disk_cached
        def slow(x):
            with open({str(log)!r}, "a") as f:
                f.write("call\\n")
            time.sleep(1.0)
            return x * 2

        assert slow(21) == 42
        """
    )
    env = {**__import__("os").environ, _cache.ENV: str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env) for _ in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    assert log.read_text().count("call") == 1
