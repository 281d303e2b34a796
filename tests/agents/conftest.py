"""Shared fixtures of the agents' tests: one torch thread, and the addition task with a
briefly pretrained reference (built once per module that asks for it)."""

import pytest

from rlviz._threads import torch_threads
from rlviz.agents.addition_task import AdditionTask, pretrain_reference


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: one thread is faster and does not fight other jobs for the cores."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def task():
    return AdditionTask.make()


@pytest.fixture(scope="module")
def setup(task):
    """(task, reference): a reference pretrained for 20 steps (fast, not a good policy)."""
    return task, pretrain_reference(task, steps=20)
