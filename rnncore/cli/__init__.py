"""The ``rnncore`` command.

::

    rnncore info MODEL.rnc [--json]             what is in a model file and how it runs here
    rnncore bench MODEL.rnc [--json] ...        latency percentiles, batch and thread sweeps, accuracy
    rnncore quantize IN.rnc -o OUT.rnc          an f32 model as q8 [--calibration X.npy]
    rnncore convert SRC -o OUT.rnc              a PyTorch/Keras/ONNX model file as .rnc
    rnncore export-c MODEL.rnc -o MODEL.c       the model as C source (--target cortex-m: integer)
    rnncore demo                                train a GRU on JapaneseVowels
    rnncore version | rnncore --version

A user's mistake ends with one line on stderr (``rnncore COMMAND: ...``, exit status 1; bad
arguments: argparse's usage and one line, status 2); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from rnncore.cli._common import CLIError

__all__ = ["main", "CLIError"]


def _first_line(doc: str) -> str:
    return doc.splitlines()[0].replace("``", "")


def _parser() -> argparse.ArgumentParser:
    from rnncore import __version__

    parser = argparse.ArgumentParser(
        prog="rnncore", description="Recurrent networks (RNN, GRU, LSTM): inspect, benchmark, quantise, "
        "convert and export .rnc models; `rnncore COMMAND -h` for a command's options (docs/cli.md).")
    parser.add_argument("--version", action="version", version=f"rnncore {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    # --debug also after the subcommand; SUPPRESS keeps a subparser from resetting the top-level value
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of any error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from rnncore.cli import bench, info, quantize

    info.add_arguments(sub.add_parser(
        "info", parents=[common], help="layers, sizes, precision, ISA path and kernels, memory, checksum",
        description=_first_line(info.__doc__)))
    bench.add_arguments(sub.add_parser(
        "bench", parents=[common], help="latency percentiles, batch/thread sweeps, peak RSS, q8 error",
        description=_first_line(bench.__doc__)))
    quantize.add_arguments(sub.add_parser(
        "quantize", parents=[common], help="an f32 .rnc model as q8 (optionally calibrated)",
        description=_first_line(quantize.__doc__)))
    from rnncore.io import convert

    convert.add_arguments(sub.add_parser("convert", parents=[common],
                                         help="a PyTorch/Keras/ONNX model file to a .rnc file"))
    ex = sub.add_parser("export-c", parents=[common],
                        help="a .rnc model as C source (const array + example main)")
    ex.add_argument("model", help="the .rnc file")
    ex.add_argument("-o", "--output", required=True, help="the .c file to write")
    ex.add_argument("--name", default=None, help="C identifier prefix (default: the output file's stem)")
    ex.add_argument("--max-bytes", type=int, default=None,
                    help="largest model file read (default 2 GiB, rnncore.io.files.MAX_MODEL_BYTES)")
    ex.add_argument("--target", choices=("host", "cortex-m"), default="host",
                    help="host: the .rnc bytes for the C core (default); cortex-m: a fully-integer model "
                         "(const arrays + static arena, docs/integer.md), needs --calibration")
    ex.add_argument("--calibration", default=None, metavar="X.npy",
                    help="cortex-m: representative inputs (B, T, F) for the integer scales")
    ex.add_argument("--calibration-lengths", default=None, metavar="L.npy",
                    help="cortex-m: valid steps per calibration sequence (B,) (default: all T)")
    ex.add_argument("--activation", choices=("gemmlowp", "table"), default=None,
                    help="cortex-m: the integer sigmoid/tanh: gemmlowp (TFLite's, default) or table "
                         "(interpolated tables, GRU and RNN only; fewer instructions, docs/integer.md)")
    ex.add_argument("--input-dtype", choices=("int8", "int16"), default=None,
                    help="cortex-m: the model input's integer type: int8 (default) or int16 (symmetric, "
                         "TFLite's 16x8 activations, first layer only; for inputs with a wide range, "
                         "docs/integer.md)")
    from rnncore import demo

    demo.add_arguments(sub.add_parser("demo", parents=[common],
                                      help="train a GRU on JapaneseVowels (NumPy reference)"))
    sub.add_parser("version", parents=[common], help="print the version")
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "version":
        import rnncore

        print(rnncore.__version__)
    elif cmd == "info":
        from rnncore.cli import info

        info.run(args)
    elif cmd == "bench":
        from rnncore.cli import bench

        bench.run(args)
    elif cmd == "quantize":
        from rnncore.cli import quantize

        quantize.run(args)
    elif cmd == "demo":
        from rnncore import demo

        try:
            demo.run(args)
        except ImportError as e:  # an optional package the demo needs
            raise CLIError(f"needs a package that is not installed: {e}") from e
    elif cmd == "export-c" and args.target == "cortex-m":
        from rnncore.cli import export_int

        export_int.run(args)
    elif cmd == "export-c":
        if args.calibration is not None or args.calibration_lengths is not None:
            raise CLIError("--calibration: only with --target cortex-m (q8 scales: rnncore quantize)")
        if args.activation is not None:
            raise CLIError("--activation: only with --target cortex-m (the integer model's sigmoid/tanh)")
        if args.input_dtype is not None:
            raise CLIError(f"--input-dtype {args.input_dtype}: only with --target cortex-m (the integer "
                           "model's input)")
        from rnncore.io.export_c import export_c
        from rnncore.io.files import MAX_MODEL_BYTES

        try:
            export_c(args.model, args.output, name=args.name,
                     max_bytes=MAX_MODEL_BYTES if args.max_bytes is None else args.max_bytes)
        except (OSError, ValueError) as e:  # one line naming the file, not a traceback
            where = getattr(e, "filename", None) or args.model
            why = " ".join((getattr(e, "strerror", None) or str(e)).split())
            raise CLIError(why if why.startswith(f"{where}: ") else f"{where}: {why}") from e
        import os

        print(f"{args.output}: C source of {args.model} ({os.path.getsize(args.model)} bytes of model)")
    elif cmd == "convert":
        from rnncore.io import convert

        convert.run(args)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns 0, or raises ``SystemExit`` with the one-line message of a user
    error (exit status 1) or argparse's (status 2)."""
    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            if not getattr(args, "debug", False):   # a warning is one line too, named like errors
                warnings.showwarning = lambda message, *_a, **_k: print(
                    f"rnncore {args.command}: warning: {message}", file=sys.stderr)
            return _dispatch(args)
    except CLIError as e:
        if getattr(args, "debug", False):
            raise
        raise SystemExit(f"rnncore {args.command}: {e}") from None
    except BrokenPipeError:  # `rnncore info ... | head`: the reader left; say nothing more
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        if getattr(args, "debug", False):
            raise
        print(f"rnncore {args.command}: interrupted", file=sys.stderr)
        return 130
