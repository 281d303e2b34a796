"""Command line: ``python -m rlviz verify [--chapter N ...]``."""

from __future__ import annotations

import argparse
import sys

from rlviz import identities, verify


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlviz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("verify", help="run every identity check and print one row per identity")
    p.add_argument("--chapter", type=int, action="append", help="only this chapter (repeatable)")
    args = parser.parse_args(argv)
    results = identities.run_all(args.chapter)  # importing identities registers them
    if not results:
        print(f"no identities registered for chapters {args.chapter}", file=sys.stderr)
        return 2
    print(verify.format_table(results))
    failed = [r for r in results if not r.ok]
    total = sum(r.seconds for r in results)
    print(f"\n{len(results) - len(failed)}/{len(results)} identities OK in {total:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
