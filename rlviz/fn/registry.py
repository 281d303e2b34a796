r"""Named tables of small functions, one per axis along which GRPO practice varies (STYLE.md,
habit 11: verl's ``register_policy_loss`` without its faults).

A :class:`Registry` maps a short stable name (``"token"``, ``"token-mean"``, ``"k3"``, ...) to an
:class:`Entry`: the function, a display label, the paper it comes from, the explicit keyword
parameters it reads, and what TRL and verl call it at the pinned versions (a string naming the
option, or :class:`NotInLibrary` with the reason). The trainer, the exact answer-tree code, the
figures' labels, the configs' validation and the conformance tests all read the same tables, so a
new variant is one registered function (plus its test and conformance case).

The tables themselves live beside their functions: :data:`rlviz.fn.ratios.POLICY_TERMS`,
:data:`rlviz.fn.grpo_aggregation.AGGREGATIONS`, :data:`rlviz.fn.grpo_loss.ADVANTAGES`,
:data:`rlviz.fn.grpo_loss.KL_ESTIMATORS`, :data:`rlviz.fn.grpo_loss.KL_PLACEMENTS` and
:data:`rlviz.fn.offpolicy.CORRECTIONS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["NotInLibrary", "Entry", "Registry"]


@dataclass(frozen=True)
class NotInLibrary:
    """An explicit "this library has no counterpart" with the reason (a conformance test
    accepts it in place of a comparison; an empty reason is refused)."""

    reason: str

    def __post_init__(self):
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise ValueError(f"reason must be a non-empty string, got {self.reason!r}")


@dataclass(frozen=True)
class Entry:
    """One registered function: ``fn`` and what the book and the libraries call it.

    ``trl`` / ``verl``: the option that selects it in TRL 1.16 / verl 0.9.1 (e.g.
    ``'loss_type="dapo"'``, ``'policy_loss.loss_mode="gspo"'``), or :class:`NotInLibrary`.
    ``params``: the keyword parameters of ``fn`` beyond the registry's common ones (a caller
    that sets a parameter the chosen entry does not read is refused, not ignored)."""

    name: str
    fn: Callable
    label: str
    paper: str
    trl: str | NotInLibrary
    verl: str | NotInLibrary
    params: tuple[str, ...] = ()

    def __post_init__(self):
        for lib in ("trl", "verl"):
            v = getattr(self, lib)
            if not isinstance(v, NotInLibrary) and not (isinstance(v, str) and v.strip()):
                raise ValueError(
                    f"{self.name}: {lib} must name the library's option or be NotInLibrary(reason), "
                    f"got {v!r}"
                )


class Registry:
    """Name -> :class:`Entry` for one axis (``axis`` names it in error messages).

    ``REG[name]`` returns the entry; an unknown name raises ``ValueError`` listing the known
    ones. :meth:`register` is a decorator; registering a name twice is refused."""

    def __init__(self, axis: str):
        self.axis = axis
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        name: str,
        *,
        label: str,
        paper: str,
        trl: str | NotInLibrary,
        verl: str | NotInLibrary,
        params: tuple[str, ...] = (),
    ):
        if name in self._entries:
            raise ValueError(f"{self.axis} {name!r} is registered already")

        def decorate(fn):
            self._entries[name] = Entry(name, fn, label, paper, trl, verl, tuple(params))
            return fn

        return decorate

    def __getitem__(self, name) -> Entry:
        return self.get(name)

    def get(self, name, field: str | None = None) -> Entry:
        """The entry of ``name``; a miss raises ``ValueError`` naming ``field`` (default: the
        axis), the value and the known names."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            known = ", ".join(map(repr, self._entries))
            raise ValueError(f"{field or self.axis} must be one of {known}, got {name!r}") from None

    def check(self, name, field: str | None = None) -> str:
        """``name`` if registered, else the ``ValueError`` of :meth:`get`."""
        return self.get(name, field).name

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def label(self, name) -> str:
        return self[name].label

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.axis!r}, {list(self._entries)})"
