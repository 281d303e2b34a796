"""Command line.

``python -m rlviz verify [--chapter N ...]``: every identity check, one row each.

``python -m rlviz runs list|check|run|replay``: the book's stored runs
(:mod:`rlviz.experiments.run_store`): list them by chapter and variant with their state
(fresh, stale, missing); check that all are fresh; train the missing and stale ones (one
process per core, or on Ray: ``--executor ray [--address ...]``; resumable); replay a seeded
sample (one run per chapter and variant, plus ``--extra``) and compare the records.
"""

from __future__ import annotations

import argparse
import sys

from rlviz import identities, verify


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlviz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("verify", help="run every identity check and print one row per identity")
    p.add_argument("--chapter", type=int, action="append", help="only this chapter (repeatable)")
    r = sub.add_parser("runs", help="the book's stored runs: list, check, run, replay")
    r.add_argument("action", choices=("list", "check", "run", "replay"))
    r.add_argument("--group", action="append", help="only groups starting with this (chNN/id)")
    r.add_argument("--jobs", type=int, default=None, help="processes (default: one per core)")
    r.add_argument("--executor", choices=("local", "ray"), default="local", help="run: where")
    r.add_argument("--address", default=None, help="a Ray cluster's address (--executor ray)")
    r.add_argument("--everything", action="store_true", help="run: train even fresh runs")
    r.add_argument("--sample-seed", type=int, default=0, help="replay: which runs are drawn")
    r.add_argument("--extra", type=int, default=0, help="replay: runs beyond one per group")
    r.add_argument("--verbose", action="store_true", help="list: one line per run")
    args = parser.parse_args(argv)
    if args.command == "runs":
        return runs_command(args)
    results = identities.run_all(args.chapter)  # importing identities registers them
    if not results:
        print(f"no identities registered for chapters {args.chapter}", file=sys.stderr)
        return 2
    print(verify.format_table(results))
    failed = [r for r in results if not r.ok]
    total = sum(r.seconds for r in results)
    print(f"\n{len(results) - len(failed)}/{len(results)} identities OK in {total:.1f} s")
    return 1 if failed else 0


def runs_command(args) -> int:
    from rlviz.experiments import book_runs, run_store

    groups = book_runs.book_groups()
    if args.group:
        groups = {k: v for k, v in groups.items() if any(k.startswith(g) for g in args.group)}
        if not groups:
            print(f"no group starts with {args.group}", file=sys.stderr)
            return 2
    specs = list(dict.fromkeys(s for g in groups.values() for s in g))
    store = run_store.store_dir()
    try:
        executor = run_store.Executor(args.executor, args.jobs, args.address)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    hashes = ", ".join(f"{k} {run_store.code_hash(k)}" for k in run_store.KINDS)
    print(f"run store: {store}; code hashes: {hashes}")
    if args.action in ("list", "check"):
        bad = 0
        for name, group in groups.items():
            states = [run_store.status(s) for s in group]
            counts = {k: states.count(k) for k in ("fresh", "stale", "missing") if k in states}
            bad += len(group) - counts.get("fresh", 0)
            print(
                f"{name:24} {len(group):3} runs  "
                + ", ".join(f"{v} {k}" for k, v in counts.items())
            )
            if args.verbose:
                for s, st in zip(group, states):
                    print(f"    {s.id}  {st:7}  {s.as_dict()}")
        print(f"{len(specs)} distinct runs; {bad} of the listed are not fresh")
        return 1 if (args.action == "check" and bad) else 0
    if args.action == "run":
        done = run_store.run_missing(specs, everything=args.everything, executor=executor)
        print(f"trained and stored {len(done)} runs")
        return 0
    chosen = run_store.sample(groups, extra=args.extra, seed=args.sample_seed)
    problems = run_store.replay(chosen, executor=executor)
    for sid, diff in problems.items():
        print(f"MISMATCH {sid}: " + "; ".join(diff))
    print(
        f"replayed {len(chosen)} runs (one per group of {len(groups)}, +{args.extra}): "
        f"{len(chosen) - len(problems)} identical to the store (wall-clock fields aside), "
        f"{len(problems)} not; executor {executor.name}"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
