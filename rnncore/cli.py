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
    ex = sub.add_parser("export-c", help="a .rnc model as C source (const array + example main)")
    ex.add_argument("model", help="the .rnc file")
    ex.add_argument("-o", "--output", required=True, help="the .c file to write")
    ex.add_argument("--name", default=None, help="C identifier prefix (default: the output file's stem)")
    ex.add_argument("--max-bytes", type=int, default=None,
                    help="largest model file read (default 2 GiB, rnncore.io.files.MAX_MODEL_BYTES)")
    from rnncore.io import convert

    convert.add_arguments(sub.add_parser("convert", help="a PyTorch/Keras/ONNX model file to a .rnc file"))
    args = parser.parse_args(argv)
    if args.command == "version":
        import rnncore

        print(rnncore.__version__)
    elif args.command == "demo":
        demo.run(args)
    elif args.command == "export-c":
        from rnncore.io.export_c import export_c
        from rnncore.io.files import MAX_MODEL_BYTES

        try:
            export_c(args.model, args.output, name=args.name,
                     max_bytes=MAX_MODEL_BYTES if args.max_bytes is None else args.max_bytes)
        except (OSError, ValueError) as e:  # one line naming the file, not a traceback
            where = getattr(e, "filename", None) or args.model
            why = " ".join((getattr(e, "strerror", None) or str(e)).split())
            raise SystemExit(f"rnncore export-c: {why}" if why.startswith(f"{where}: ")
                             else f"rnncore export-c: {where}: {why}") from e
    elif args.command == "convert":
        from rnncore.io import convert

        convert.run(args)
    return 0
