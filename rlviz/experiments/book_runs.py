"""Every trained run the book's chapters 13-17 read, grouped by chapter and variant.

The chapters call :func:`rlviz.experiments.ch13.stored_study`,
:func:`rlviz.experiments.addition_runs.run_variants` / ``run_spread`` /
:func:`rlviz.experiments.ch14.run_grid` with their modules' constants; :func:`book_groups`
turns the same constants into specs (:class:`~rlviz.experiments.ppo_study.StudySpec`,
:class:`~rlviz.experiments.run_spec.RunSpec`), which
``python -m rlviz runs`` lists, trains and replays. CI executes the chapters with
``RLVIZ_RUNS_STRICT=1``, so a run a chapter reads and this list misses fails the build.
"""

from __future__ import annotations

from rlviz.experiments import ch13, ch14, ch15, ch16, ch17
from rlviz.experiments.addition_runs import SPLITS, SPREAD_SEEDS
from rlviz.experiments.run_spec import RunSpec, spec_of

__all__ = [
    "CH14_SPREAD_STEPS",
    "CH14_VARIANT_STEPS",
    "CH14_GRID_STEPS",
    "book_groups",
    "book_specs",
]

CH14_SPREAD_STEPS = 80  # the notes' GRPO over 5 splits x 3 seeds
CH14_VARIANT_STEPS = 40  # the other variants over 5 splits, seed 0
CH14_GRID_STEPS = 30  # the slider grid


def _spread(config, steps, splits=SPLITS, seeds=SPREAD_SEEDS) -> list[RunSpec]:
    return [spec_of(config, steps, k, s) for k in splits for s in seeds]


def book_groups() -> dict[str, list]:
    """``{"chNN/<variant id>": [spec, ...]}`` for every trained table and figure of
    chapters 13-17 (chapter 13's study is one batched run)."""
    groups = {"ch13/study": [ch13.study_run_spec(ch13.study())]}
    groups["ch14/notes"] = _spread(ch14.SPREAD_VARIANTS["notes"].config, CH14_SPREAD_STEPS)
    for vid, v in ch14.SPREAD_VARIANTS.items():
        if vid != "notes":  # cut from the 80-update spread above
            groups[f"ch14/{vid}"] = _spread(v.config, CH14_VARIANT_STEPS, seeds=(0,))
    groups["ch14/grid"] = [ch14.grid_spec(s, CH14_GRID_STEPS) for s in ch14.grid_settings()]
    for name, module in (("ch15", ch15), ("ch16", ch16), ("ch17", ch17)):
        for vid, v in module.TRAINED_VARIANTS.items():
            groups[f"{name}/{vid}"] = _spread(v.config, module.TRAINED_STEPS)
    return groups


def book_specs() -> list:
    """Every run of :func:`book_groups`, each once (two chapters may share a run)."""
    return list(dict.fromkeys(s for g in book_groups().values() for s in g))
