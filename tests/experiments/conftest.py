"""Fixtures shared by the experiments' tests."""

import warnings

import pytest

from rlviz.agents.addition_task import AdditionTask, pretrain_reference
from rlviz.experiments import addition_runs, run_spec, run_store


@pytest.fixture()
def small_book(monkeypatch, tmp_path):
    """The runners with a small reference (20 pretraining steps) in place of the book's, and an
    empty run store: every run is missing, trained (its warning silenced) and never stored."""
    task = AdditionTask.make()
    small = lambda: (task, pretrain_reference(task, steps=20))  # noqa: E731
    monkeypatch.setattr(addition_runs, "book_task", small)  # the live runs'
    monkeypatch.setattr(run_spec, "book_task", small)  # the stored runs' (train_run)
    monkeypatch.setenv(run_store.ENV, str(tmp_path))
    monkeypatch.delenv(run_store.STRICT_ENV, raising=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "run .* is missing from the run store")
        yield task
    assert not list(tmp_path.iterdir())  # reading never writes the store
