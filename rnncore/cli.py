"""The ``rnncore`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rnncore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print the version")
    from rnncore import demo

    demo.add_arguments(sub.add_parser("demo", help="train a GRU on JapaneseVowels (NumPy reference)"))
    args = parser.parse_args(argv)
    if args.command == "version":
        import rnncore

        print(rnncore.__version__)
    elif args.command == "demo":
        demo.run(args)
    return 0
