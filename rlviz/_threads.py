"""How many threads torch uses, set for a block or a call and restored afterwards.

At this book's sizes (tensors of a few hundred entries) each torch operation costs
microseconds of overhead and a second thread mostly adds synchronisation, so the trainers and
the exact checks run on one thread by default (the benchmarks appendix has the measurements).
This is the one place that changes torch's thread count; it always restores it.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager

import torch

from rlviz import _validate

__all__ = ["torch_threads", "with_threads"]


@contextmanager
def torch_threads(n: int = 1):
    """Run the block with ``n`` torch threads (default 1), then restore the previous count."""
    n = _validate.positive("threads", n, integer=True)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def with_threads(fn):
    """Decorate ``fn`` so that it takes a keyword ``threads`` (default 1) and runs under
    :func:`torch_threads` with it."""

    @functools.wraps(fn)
    def wrapper(*args, threads: int = 1, **kwargs):
        with torch_threads(threads):
            return fn(*args, **kwargs)

    return wrapper
