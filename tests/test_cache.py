"""rlviz._cache.source_hash: the key of the execution cache (scripts/_env.sh)."""

import subprocess
import sys

from rlviz import _cache


def test_source_hash_covers_the_package(tmp_path, monkeypatch):
    h = _cache.source_hash()
    assert len(h) == 64 and h == _cache.source_hash()
    # a copy of the package with one byte changed hashes differently
    import shutil

    copy = tmp_path / "rlviz"
    shutil.copytree(_cache._PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "static"))
    run = [sys.executable, str(copy / "_cache.py")]
    same = subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip()
    (copy / "fn" / "ratios.py").write_text((copy / "fn" / "ratios.py").read_text() + "\n")
    changed = subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip()
    assert same == h and changed != h
