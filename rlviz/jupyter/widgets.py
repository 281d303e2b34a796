"""Live ipywidgets for the notebooks (they need a running kernel; the website uses plotly sliders).

Each explorer recomputes its figure from rlviz for any slider value, calling the same figure
functions the static pages use. How it behaves when a slider moves:

* the first figure is drawn when the cell runs, in the cell (so a notebook run is
  deterministic); every later one is drawn in a background thread, so the kernel keeps
  receiving slider values while a figure is computed;
* a status line under the sliders says what is being computed and, when done, the values
  drawn and how long it took (``gamma=0.91 · drawn in 0.42 s``); an error is shown there and
  in the output area (with its traceback), never swallowed;
* only the newest slider value is drawn: values that arrive while a figure is computed are
  coalesced, and a figure whose values were superseded is dropped, never displayed;
* a ``draw`` that takes a ``progress`` keyword (the training explorers of chapters 13 and
  14) gets a callback ``progress(fraction)`` that fills a progress bar; when a newer value
  has arrived, that callback raises :class:`Superseded`, which stops the stale run early;
* when the first draw took longer than :data:`SLOW_SECONDS`, sliders update on release
  (``continuous_update=False``) instead of on every pixel of a drag.
"""

from __future__ import annotations

import html
import inspect
import math
import threading
import time
import traceback
from collections import deque

import ipywidgets as w

from rlviz.figures.common import mime_bundle

__all__ = ["explorer", "Explorer", "Superseded", "SLOW_SECONDS"]

SLOW_SECONDS = 0.5


class Superseded(Exception):
    """Raised by an explorer's ``progress`` callback when a newer slider value is waiting."""


def _label(values: dict) -> str:
    def fmt(v):
        if isinstance(v, float) and math.isfinite(v):
            return f"{round(v, 6):g}"
        return str(v)

    return ", ".join(f"{k}={fmt(v)}" for k, v in values.items())


class Explorer(w.VBox):
    """Sliders, a status line, a progress bar and the figure ``draw(**values)``; see the module."""

    def __init__(self, draw, sliders: dict):
        if not callable(draw):
            raise ValueError(f"draw must be callable (values -> plotly figure), got {draw!r}")
        if not sliders:
            raise ValueError("explorer needs at least one control, e.g. gamma=FloatSlider(...)")
        for name, s in sliders.items():
            if not isinstance(s, w.ValueWidget):
                raise ValueError(
                    f"control {name!r} must be an ipywidgets value widget "
                    f"(FloatSlider, IntSlider, Dropdown, ...), got {type(s).__name__}"
                )
        params = inspect.signature(draw).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        missing = [n for n in sliders if n not in params and not takes_kwargs]
        if missing:
            raise ValueError(
                f"draw has no parameter named {missing}; its parameters are {list(params)}"
            )
        self.draw, self.controls = draw, dict(sliders)
        for s in self.controls.values():  # show every digit of the step (0.981, not 0.98)
            if isinstance(s, w.FloatSlider) and s.readout_format == ".2f":
                step = f"{s.step:g}"
                decimals = len(step.split(".")[1]) if "." in step and "e" not in step else 2
                s.readout_format = f".{max(2, decimals)}f"
        self.takes_progress = "progress" in params
        self.status = w.HTML().add_class("rlviz-status")
        self.bar = w.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=w.Layout(width="160px", visibility="hidden")
        )
        self.out = w.Output().add_class("rlviz-output")
        # one row per finished draw (values, seconds, outcome), the last 200
        self.history: deque[dict] = deque(maxlen=200)
        self._lock = threading.Lock()
        self._latest = 0  # number of the newest request
        self._pending = None  # (number, values) not yet started
        self._worker: threading.Thread | None = None
        super().__init__(
            [w.HBox(list(self.controls.values())), w.HBox([self.status, self.bar]), self.out]
        )
        self.add_class("rlviz-explorer")
        if self.takes_progress:  # the browser test asks these, and only these, to fill the bar
            self.add_class("rlviz-reports-progress")
        self._run(0, self.values())  # the first figure: in the cell, synchronously
        if self.history and self.history[-1]["seconds"] > SLOW_SECONDS:
            for s in self.controls.values():
                if hasattr(s, "continuous_update"):
                    s.continuous_update = False
        for s in self.controls.values():
            s.observe(self._request, names="value")

    def values(self) -> dict:
        return {k: s.value for k, s in self.controls.items()}

    # ---- scheduling: newest value wins
    def _request(self, _change=None) -> None:
        with self._lock:
            self._latest += 1
            self._pending = (self._latest, self.values())
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, daemon=True, name="rlviz-explorer"
                )
                self._worker.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                job, self._pending = self._pending, None
                if job is None:
                    self._worker = None
                    return
            self._run(*job)

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until every requested figure is drawn (for tests); False on timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                worker = self._worker
            if worker is None:
                return True
            worker.join(0.01)
        return False

    def _stale(self, number: int) -> bool:
        return number != self._latest

    def _progress(self, number: int, fraction: float) -> None:
        if self._stale(number):
            raise Superseded
        self.bar.value = min(max(float(fraction), 0.0), 1.0)

    # ---- one draw
    def _run(self, number: int, values: dict) -> None:
        label = _label(values)
        self.status.value = html.escape(f"computing {label} …")
        kwargs = dict(values)
        if self.takes_progress:
            self.bar.value = 0.0
            self.bar.layout.visibility = "visible"
            kwargs["progress"] = lambda fraction: self._progress(number, fraction)
        t0 = time.perf_counter()
        try:
            bundle = mime_bundle(self.draw(**kwargs))
        except Superseded:
            self.history.append(
                {"values": values, "seconds": time.perf_counter() - t0, "outcome": "superseded"}
            )
            return
        except Exception as exc:  # shown to the reader, not swallowed
            seconds = time.perf_counter() - t0
            self.history.append({"values": values, "seconds": seconds, "outcome": "error"})
            if self._stale(number):
                return
            self.out.outputs = (
                {
                    "output_type": "error",
                    "ename": type(exc).__name__,
                    "evalue": str(exc),
                    "traceback": traceback.format_exception(exc),
                },
            )
            message = html.escape(f"{label} · error: {type(exc).__name__}: {exc}")
            self.status.value = f'<span style="color:#b00020">{message}</span>'
            self.bar.layout.visibility = "hidden"
            return
        seconds = time.perf_counter() - t0
        if self._stale(number):  # a newer value is waiting: never show this one
            self.history.append({"values": values, "seconds": seconds, "outcome": "dropped"})
            return
        # set the Output widget's content directly (a plain state update) rather than
        # capturing display() inside ``with out:``, whose message protocol races under nbclient
        self.out.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)
        self.status.value = html.escape(f"{label} · drawn in {seconds:.2f} s")
        self.bar.layout.visibility = "hidden"
        self.history.append({"values": values, "seconds": seconds, "outcome": "drawn"})


def explorer(draw, **sliders) -> Explorer:
    """A box of controls that redraws ``draw(**values)`` (a plotly figure) whenever one moves.

    ``sliders`` maps keyword names of ``draw`` to ipywidgets controls, e.g.
    ``explorer(lambda gamma: discount_figure([gamma]), gamma=FloatSlider(...))``. See the
    module docstring for threading, progress and superseded values.
    """
    return Explorer(draw, sliders)
