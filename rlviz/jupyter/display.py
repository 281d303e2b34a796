"""Showing rlviz's own source in the book, so the code on the page is the code that runs."""

from __future__ import annotations

import ast
import inspect
import textwrap

__all__ = ["show_source", "source_markdown", "LONG_SOURCE", "glue_number"]

LONG_SOURCE = 40  # listings longer than this many lines are collapsed below their head


def _head_lines(src: str) -> int:
    """How many lines of ``src`` (a def or class) make its head: signature and docstring."""
    node = ast.parse(textwrap.dedent(src)).body[0]
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        return body[0].end_lineno
    return body[0].lineno - 1 if body else len(src.splitlines())


def source_markdown(obj, *, long: int = LONG_SOURCE) -> str:
    """The Markdown :func:`show_source` displays for ``obj`` (a function or class of rlviz).

    A listing of at most ``long`` lines is shown whole. A longer one shows its head (signature
    and docstring) and the whole source in a collapsed ``<details>`` block, which the website
    and JupyterLab both render as a dropdown.
    """
    src = inspect.getsource(obj)
    where = f"{inspect.getmodule(obj).__name__}.{obj.__qualname__}"
    lines = src.splitlines(keepends=True)
    if len(lines) <= long:
        return f"`{where}` (from the installed package):\n\n```python\n{src}```"
    head = "".join(lines[: _head_lines(src)])
    return (
        f"`{where}` (from the installed package; {len(lines)} lines, the signature and docstring "
        f"first):\n\n```python\n{head}    ...\n```\n\n<details>\n<summary>The whole source of "
        f"<code>{obj.__qualname__}</code> ({len(lines)} lines)</summary>\n\n```python\n{src}```\n\n"
        f"</details>\n"
    )


def show_source(obj) -> None:
    """Display the source of a function or class of rlviz as a highlighted code block (long
    listings collapsed below their signature and docstring, :func:`source_markdown`)."""
    from IPython.display import Markdown, display

    display(Markdown(source_markdown(obj)))


def glue_number(name: str, value, fmt: str) -> str:
    """Glue ``format(value, fmt)`` under ``name`` for the prose (``{glue:text}`name```) and
    return the text.

    The number is glued as its formatted *text*, not as a float: nbval compares a glued value's
    ``text/plain``, so a float's 17 digits would make the stored output platform-dependent,
    while ``'0.0166'`` is stable. Nothing is displayed in the cell.
    """
    from myst_nb import glue

    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"name must be letters, digits, '_' or '-', got {name!r}")
    text = format(value, fmt)
    glue(name, text, display=False)
    return text
