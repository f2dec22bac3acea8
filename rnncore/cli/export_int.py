"""``rnncore export-c MODEL.rnc -o kws.c --target cortex-m --calibration X.npy``: a fully-integer
C model for a microcontroller.

The ``.rnc`` file's float model is calibrated on ``X`` (``(B, T, F)`` representative inputs,
``--calibration-lengths L.npy`` for their valid steps), quantised to integers
(:mod:`rnncore.quant.integer`; ``--activation table`` for the table sigmoid/tanh, GRU and RNN;
``--input-dtype int16`` for an int16 model input)
and written as C source by :func:`rnncore.io.export_int_c.export_int_c`: ``kws.c`` (const arrays
in flash, a static arena) and ``kws.h``. docs/integer.md has the arithmetic, the memory budget
and how to build it.

``rnncore export-c M_int.rnc -o kws.c --target cortex-m``: a fully-integer ``.rnc`` file
(precision 3, written by ``rnncore quantize --precision int8``) already holds the integer model;
it is compiled as it is, without calibration data (the same C as from the float file and the
calibration that made it).
"""

from __future__ import annotations

import argparse

from rnncore.cli._common import CLIError, check_output_path, int_calibration, read_model_bytes


def run(args: argparse.Namespace) -> None:
    from rnncore.io.export_int_c import export_int_c
    from rnncore.io.rnc import read_rnc
    from rnncore.quant import integer as qi
    from rnncore.spec import spec_from_rnc

    data = read_model_bytes(args.model)
    try:
        d = read_rnc(data)
    except ValueError as e:
        raise CLIError(f"{args.model}: {e}") from e
    if d["precision"] == "int8":
        return _run_int_file(args, d["int_model"])
    if args.calibration is None:
        raise CLIError("--target cortex-m needs --calibration X.npy: integer models have static scales "
                       "measured on representative inputs (B, T, F)")
    try:
        spec = spec_from_rnc(d)
    except ValueError as e:
        raise CLIError(f"{args.model}: {e}") from e
    check_output_path(args.output)
    cal = int_calibration(args, spec)
    try:
        model = qi.quantize_int_model(spec, cal, activation=args.activation or "gemmlowp")
        budget = export_int_c(model, args.output, name=args.name)
    except ValueError as e:
        raise CLIError(f"{args.model}: {e}") from e
    except OSError as e:
        raise CLIError(f"-o {args.output}: {e.strerror or e}") from e
    _report(args, budget, args.activation or "gemmlowp")


def _report(args: argparse.Namespace, budget: dict, activation: str) -> None:
    print(f"{args.output} (+ .h): fully-integer model for Cortex-M: {budget['flash_bytes']} bytes const "
          f"(flash), {budget['arena_bytes']} bytes static arena (state {budget['state_bytes']} + scratch "
          f"{budget['scratch_bytes']}), {activation} activations, {budget.get('input_dtype', 'int8')} input")


def _run_int_file(args: argparse.Namespace, model) -> None:
    """An integer ``.rnc`` file: its model as it is (scales and activations are in the file)."""
    from rnncore.io.export_int_c import export_int_c

    for opt, val in (("--calibration", args.calibration), ("--calibration-lengths", args.calibration_lengths),
                     ("--activation", args.activation), ("--input-dtype", args.input_dtype)):
        if val is not None:
            raise CLIError(f"{opt} {val}: {args.model} is already an integer model (precision int8: its "
                           "scales and activations are in the file)")
    check_output_path(args.output)
    try:
        budget = export_int_c(model, args.output, name=args.name)
    except ValueError as e:
        raise CLIError(f"{args.model}: {e}") from e
    except OSError as e:
        raise CLIError(f"-o {args.output}: {e.strerror or e}") from e
    _report(args, budget, model.layers[0].activation)
