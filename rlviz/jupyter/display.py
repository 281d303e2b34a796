"""Showing rlviz's own source in the book, so the code on the page is the code that runs."""

from __future__ import annotations

import inspect

__all__ = ["show_source"]


def show_source(obj) -> None:
    """Display the source of a function or class of rlviz as a highlighted code block."""
    from IPython.display import Markdown, display

    src = inspect.getsource(obj)
    where = f"{inspect.getmodule(obj).__name__}.{obj.__qualname__}"
    display(Markdown(f"`{where}` (from the installed package):\n\n```python\n{src}```"))
