"""The identity registry and the ``python -m rlviz verify`` command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rlviz import identities, verify
from rlviz.__main__ import main


def test_every_registered_identity_passes():
    results = identities.run_all()
    failed = [(r.identity.key, r.value) for r in results if not r.ok]
    assert not failed
    chapters = {r.identity.chapter for r in results}
    assert {1, 2} <= chapters
    for r in results:
        if r.identity.kind == "exact":
            assert r.identity.tol <= 1e-10


def test_stable_line_has_no_raw_float():
    res = verify.run("ch1.objective_enumeration_vs_recursion")
    assert res.line().startswith(
        "J_H by enumeration = J_H by forward recursion: max |lhs - rhs| < 1e-12"
    )
    assert res.line().count("e-16") == 0


def test_sanity_rows_say_so_in_their_line():
    """A check true by construction is labelled in the line the chapters print."""
    res = verify.run("ch1.trajectory_probabilities")
    assert res.identity.kind == "sanity"
    assert res.line().startswith("sanity check (true by construction): enumerated trajectory")
    assert not verify.run("ch1.return_recursion").line().startswith("sanity")


def test_unknown_kind_is_rejected():
    with pytest.raises(
        ValueError, match="kind must be one of 'exact', 'statistical', 'bound', 'sanity'"
    ):
        verify.identity("test.kind", chapter=99, title="t", kind="proof")


@pytest.mark.parametrize(
    "err,shown", [(3e-16, "< 1e-12"), (4e-11, "< 1e-10"), (2e-3, "< 1e-2"), (float("nan"), "= nan")]
)
def test_stable_error(err, shown):
    assert verify.stable_error(err) == shown


def test_cli_fails_when_an_identity_fails(capsys, monkeypatch):
    @verify.identity("test.broken", chapter=99, title="a deliberately broken identity")
    def broken():
        return verify.Measure(1.0, "lhs and rhs differ by 1")

    try:
        assert main(["verify", "--chapter", "99"]) == 1
        out = capsys.readouterr().out
        assert "a deliberately broken identity" in out and "FAIL" in out
    finally:
        verify._REGISTRY.pop("test.broken")


def test_cli_lists_chapters_and_exits_zero():
    proc = subprocess.run(
        [sys.executable, "-m", "rlviz", "verify", "--chapter", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "J_H by enumeration = J_H by forward recursion" in proc.stdout
    assert "identities OK" in proc.stdout


def test_unknown_identity_is_a_clear_error():
    with pytest.raises(ValueError, match="no identity 'nope'"):
        verify.check("nope")
