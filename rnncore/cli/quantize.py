"""``rnncore quantize IN.rnc -o OUT.rnc``: an f32 model file as a q8 (q4, int8) one.

The f32 file's weights are the float32 model, so this is what ``rc.compile(model,
precision="q8", calibration=X)`` writes for the model it came from, byte for byte: per-row int8
weights and, with ``--calibration X.npy`` (representative inputs ``(B, T, F)``, or ``(B, T)``
token ids), static activation scales measured on ``X`` (:func:`rnncore.quant.calibrate`);
without it, dynamic per-step scales. ``--state-scale bounded`` is ``state_scale="bounded"``;
``--front-f32 2 3`` is ``front_f32=[2, 3]`` (those frame_convs kept in float32), ``--front-f32
conv_time:0`` is ``front_f32=["conv_time:0"]`` (the first conv_time kept in float32), ``--front-bits 16``
is ``front_bits=16`` (16-bit weights and input codes in the other frame_convs).

``--precision int8 --calibration X.npy`` writes a fully-integer model (precision 3,
docs/integer.md): :func:`rnncore.quant.integer.calibrate_int` on ``X`` (floats ``(B, T, F)``),
:func:`~rnncore.quant.integer.quantize_int_model` (``--activation table``: the table sigmoid/tanh,
GRU and RNN) and :func:`rnncore.io.rnc_int.write_int_rnc`; ``rnncore export-c OUT.rnc --target
cortex-m`` then compiles it without calibration data.
"""

from __future__ import annotations

import argparse

import numpy as np

from rnncore.cli._common import CLIError, check_output_path, int_calibration, load_npy, read_model_bytes


def _front_f32_item(s: str) -> int | str:
    """One ``--front-f32`` item as ``front_f32`` takes it: ``"2"`` the integer 2 (a frame_conv
    number), anything else the string (``"conv_time:0"``; build_rnc checks it)."""
    try:
        return int(s)
    except ValueError:
        return s


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the f32 .rnc file")
    p.add_argument("--front-f32", type=_front_f32_item, nargs="+", default=None, metavar="N",
                   help="q8: keep these convolutions of the front-end in float32, the others int8: N "
                        "the N-th frame_conv (0: the first), conv_time:N the N-th conv_time "
                        "(rc.compile's front_f32; rnncore.quant.choose_front_f32 measures which; "
                        "docs/q8-contract.md)")
    p.add_argument("--front-bits", type=int, choices=(8, 16), default=8,
                   help="q8: the frame_convs' weight and input code bits: 8 (default) or 16 (exact "
                        "int64 sums; rc.compile's front_bits; docs/q8-contract.md)")
    p.add_argument("-o", "--output", required=True, help="the q8 .rnc file to write")
    p.add_argument("--precision", choices=("q8", "q4", "int8"), default="q8",
                   help="the precision to write: q8, or q4 (int4 weights, q8 activations; "
                        "docs/q8-contract.md), or int8 (a fully-integer model for microcontrollers, "
                        "needs --calibration; docs/integer.md)")
    add_calibration_arguments(p)
    p.add_argument("--input-dtype", choices=("int8", "int16"), default=None,
                   help="--precision int8: the model input's integer type, int8 (default) or int16 "
                        "(symmetric, TFLite's 16x8 activations, first layer only; for inputs with a "
                        "wide range, docs/integer.md)")
    p.add_argument("--activation", choices=("gemmlowp", "table"), default=None,
                   help="int8: the integer sigmoid/tanh: gemmlowp (TFLite's, default) or table "
                        "(interpolated tables, GRU and RNN only)")


def add_calibration_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calibration", default=None, metavar="X.npy",
                   help="q8: representative inputs (B, T, F) floats or (B, T) token ids, for static "
                        "activation scales (default: dynamic per-step scales)")
    p.add_argument("--calibration-lengths", default=None, metavar="L.npy",
                   help="valid steps per calibration sequence (B,) (default: all T)")
    p.add_argument("--state-scale", default=None, choices=("dynamic", "bounded"),
                   help="q8: the scale of GRU/LSTM/tanh-RNN states: 'bounded' = the fixed 1/127 of "
                        "states in [-1, 1], no per-step scan; 'dynamic' = per step even when "
                        "calibrated (default: the calibration's, else dynamic; docs/q8-contract.md)")


def load_calibration(args: argparse.Namespace, precision: str):
    """The calibration data of ``--calibration`` / ``--calibration-lengths`` (None without),
    every error blamed on the calibration file."""
    if getattr(args, "state_scale", None) is not None and precision == "f32":
        raise CLIError(f"--state-scale {args.state_scale}: activation scales exist only for "
                       "--precision q8 or q4")
    if args.calibration is None:
        if args.calibration_lengths is not None:
            raise CLIError("--calibration-lengths needs --calibration")
        return None
    if precision == "f32":
        raise CLIError("--calibration: static activation scales exist only for --precision q8 or q4")
    x = load_npy(args.calibration, "--calibration")
    if x.dtype.kind == "f":
        x = np.asarray(x, np.float32)
    if args.calibration_lengths is None:
        return x
    n = load_npy(args.calibration_lengths, "--calibration-lengths")
    return x, n


def build(spec, precision: str, calibration, args: argparse.Namespace) -> bytes:
    """``build_rnc`` with calibration mistakes blamed on the calibration file."""
    from rnncore.spec import build_rnc

    state_scale = getattr(args, "state_scale", None)
    front_f32 = getattr(args, "front_f32", None)
    front_bits = getattr(args, "front_bits", 8)
    try:
        data, _ = build_rnc(spec, precision, calibration, state_scale, None, front_f32, front_bits)
    except (ValueError, TypeError) as e:
        msg = str(e)
        if msg.startswith("front_f32"):
            raise CLIError(f"--front-f32 {' '.join(map(str, front_f32))}: {msg.split(': ', 1)[1]}") from e
        if msg.startswith("front_bits"):
            raise CLIError(f"--front-bits {front_bits}: {msg.split(': ', 1)[1]}") from e
        if msg.startswith("state_scale"):
            raise CLIError(f"--state-scale {state_scale}: {msg.split(': ', 1)[1]}") from e
        if calibration is not None and msg.startswith(("calibration", "calibrate")):
            on_lengths = msg.startswith("calibration: lengths") or "every length is 0" in msg
            if on_lengths and args.calibration_lengths:
                where = f"--calibration-lengths {args.calibration_lengths}"
                msg = msg.removeprefix("calibration: lengths: ")
            else:
                where = f"--calibration {args.calibration}"
            raise CLIError(f"{where}: {msg.removeprefix('calibration: ').removeprefix('calibrate: ')}") from e
        raise CLIError(f"{args.model}: {msg}") from e
    return data


def run(args: argparse.Namespace) -> None:
    from rnncore.io.rnc import read_rnc
    from rnncore.spec import spec_from_rnc

    data = read_model_bytes(args.model)
    try:
        d = read_rnc(data)
    except ValueError as e:
        if getattr(e, "message", None) == "MAGIC":  # rnc.RncFormatError: the magic number is wrong
            raise CLIError(f"{args.model}: not an .rnc file ({e}); a PyTorch/Keras/ONNX model is "
                           "quantised with `rnncore convert SRC -o OUT.rnc --precision q8`") from e
        raise CLIError(f"{args.model}: {e}") from e
    if d["precision"] != "f32":
        raise CLIError(f"{args.model}: already {d['precision']}; quantize reads an f32 model")
    if args.precision == "int8":
        return _run_int8(args, d, len(data))
    if args.activation is not None:
        raise CLIError(f"--activation {args.activation}: the integer sigmoid/tanh exists only for "
                       "--precision int8")
    if args.input_dtype is not None:
        raise CLIError(f"--input-dtype {args.input_dtype}: the integer input type exists only for "
                       "--precision int8")
    check_output_path(args.output)
    calibration = load_calibration(args, args.precision)
    out = build(spec_from_rnc(d), args.precision, calibration, args)
    try:
        with open(args.output, "wb") as f:
            f.write(out)
    except OSError as e:
        raise CLIError(f"-o {args.output}: {e.strerror or e}") from e
    scales = "static activation scales from " + args.calibration if calibration is not None \
        else "dynamic activation scales"
    if args.state_scale is not None:
        scales += f", {args.state_scale} state scales"
    print(f"{args.output}: {args.precision}, {scales}, {len(out)} bytes "
          f"(from {len(data)} bytes f32, {len(out) / len(data):.2f}x)")


def _run_int8(args: argparse.Namespace, d: dict, n_in: int) -> None:
    """``--precision int8``: calibrate, quantise to integers, write precision 3."""
    from rnncore.io.rnc_int import write_int_rnc
    from rnncore.quant import integer as qi
    from rnncore.spec import spec_from_rnc

    if args.state_scale is not None:
        raise CLIError(f"--state-scale {args.state_scale}: q8 and q4 only (an integer model's state "
                       "scales come from --calibration)")
    if args.calibration is None:
        raise CLIError("--precision int8 needs --calibration X.npy: integer models have static scales "
                       "measured on representative inputs (B, T, F)")
    check_output_path(args.output)
    spec = spec_from_rnc(d)
    cal = int_calibration(args, spec)
    activation = args.activation or "gemmlowp"
    try:
        out = write_int_rnc(qi.quantize_int_model(spec, cal, activation=activation))
    except ValueError as e:
        raise CLIError(f"{args.model}: {e}") from e
    try:
        with open(args.output, "wb") as f:
            f.write(out)
    except OSError as e:
        raise CLIError(f"-o {args.output}: {e.strerror or e}") from e
    print(f"{args.output}: int8 (fully-integer, {activation} activations), {cal.input_dtype} input, "
          f"static scales from "
          f"{args.calibration}, {len(out)} bytes (from {n_in} bytes f32, {len(out) / n_in:.2f}x)")
