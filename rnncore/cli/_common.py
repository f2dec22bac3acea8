"""Shared by the ``rnncore`` subcommands: the user-error type, argument types, file loading."""

from __future__ import annotations

import argparse
import os

import numpy as np


class CLIError(Exception):
    """A user's mistake (a missing file, a bad value, a model the engine refuses): the command
    prints ``rnncore COMMAND: message`` on one line and exits with status 1 (``--debug``: the
    traceback instead)."""


# -- argparse types: a bad value is argparse's one-line "argument --x: ..." error -------------


def positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def non_negative_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


def positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}") from None
    if not (v > 0 and np.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {s}")
    return v


MAX_BATCH = 1 << 24  # the C core's limit (csrc/src/model.c MAX_BATCH)


def int_list(s: str) -> list[int]:
    """``"1,8,64"`` -> ``[1, 8, 64]`` (positive integers, duplicates dropped, order kept)."""
    out: list[int] = []
    for part in s.split(","):
        v = positive_int(part.strip())
        if v not in out:
            out.append(v)
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {s!r}")
    return out


def batch_list(s: str) -> list[int]:
    """:func:`int_list` of batch sizes, each at most the C core's 2**24."""
    out = int_list(s)
    big = [v for v in out if v > MAX_BATCH]
    if big:
        raise argparse.ArgumentTypeError(f"batch sizes are at most {MAX_BATCH} (2**24), got {big[0]}")
    return out


# -- files ------------------------------------------------------------------------------------


def read_model_bytes(path: str) -> bytes:
    """The bytes of a ``.rnc`` file; missing/unreadable files are a :class:`CLIError`."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CLIError(f"{path}: {e.strerror or e}") from e


def load_engine(path: str, isa: str | None = None):
    """``rc.load(path)`` with the path in every error; ``isa`` forces a path first."""
    import rnncore as rc

    data = read_model_bytes(path)
    if isa is not None:
        set_isa(isa)
    try:
        return data, rc.Engine(data)  # the C loader's reason, without rc.load's Python-API hint
    except ValueError as e:
        hint = ("; a PyTorch/Keras/ONNX model becomes an .rnc file with `rnncore convert`"
                if "bad magic" in str(e) else "")
        raise CLIError(f"{path}: {e}{hint}") from e
    except ImportError as e:
        raise CLIError(f"the C engine is not available in this install ({e})") from e


def set_isa(name: str) -> None:
    import rnncore as rc

    try:
        rc.set_isa(name)
    except (ValueError, TypeError) as e:
        raise CLIError(f"--isa {name}: {e}") from e
    except ImportError as e:
        raise CLIError(f"the C engine is not available in this install ({e})") from e


def load_npy(path: str, what: str) -> np.ndarray:
    """An array from a ``.npy`` file (or the first array of an ``.npz``), errors naming ``what``;
    special files and files above ``rnncore.io.files.MAX_MODEL_BYTES`` are refused unread."""
    from rnncore.io.files import check_file

    try:
        check_file(path, what=f"{what} file")
        with open(path, "rb") as f:
            magic = f.read(6)
        if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
            raise CLIError(f"{what} {path}: not a .npy file (save the array with numpy.save)")
        a = np.load(path, allow_pickle=False)
    except FileNotFoundError as e:
        raise CLIError(f"{what} {path}: no such file") from e
    except (OSError, ValueError, EOFError) as e:
        raise CLIError(f"{what} {path}: not a readable .npy array ({e})") from e
    if isinstance(a, np.lib.npyio.NpzFile):
        with a:
            if not a.files:
                raise CLIError(f"{what} {path}: the .npz holds no arrays")
            a = a[a.files[0]]
    return a


def check_output_path(path: str, what: str = "-o") -> None:
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise CLIError(f"{what} {path}: the directory {d} does not exist")


def int_calibration(args: argparse.Namespace, spec):
    """The integer model's static ranges measured on ``--calibration X.npy`` (``(B, T, F)``
    floats; ``--calibration-lengths L.npy`` their valid steps), for ``quantize --precision int8``
    and ``export-c --target cortex-m``; a :class:`CLIError` naming the option otherwise."""
    from rnncore.quant import integer as qi

    x = load_npy(args.calibration, "--calibration")
    lengths = None if args.calibration_lengths is None else load_npy(args.calibration_lengths,
                                                                     "--calibration-lengths")
    if x.ndim != 3 or x.dtype.kind != "f":
        raise CLIError(f"--calibration {args.calibration}: expected floats of shape (B, T, F), "
                       f"got {x.dtype} {x.shape}")
    try:
        return qi.calibrate_int(spec, x, lengths, input_dtype=getattr(args, "input_dtype", None) or "int8")
    except ValueError as e:
        raise CLIError(f"--calibration {args.calibration}: {e}") from e
