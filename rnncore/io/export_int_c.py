"""C source of a fully-integer model for a microcontroller (``rnncore export-c --target cortex-m``).

``export_int_c(model, "kws.c")`` writes ``kws.c`` and ``kws.h``:

* every weight, bias, multiplier and shift as a ``static const`` array (``.rodata``: flash on a
  Cortex-M; ``-DRNC_INT_FLASH='__attribute__((section(".x")))'`` places them elsewhere);
* one ``static int32_t`` arena sized at compile time (``<NAME>_ARENA_BYTES``: every layer's
  state, then one scratch area shared by the layers, ``RNC_INT_SCRATCH_BYTES``);
* ``<NAME>_reset()`` (checks the cells; 0 or ``RNC_INT_E_ARG``), ``<NAME>_step(x8)`` (one time
  step through every layer), ``<NAME>_output()`` (the last layer's int8 h) and, with a head,
  ``<NAME>_head(logits)`` (int32 logits on one scale, ``rnncore.quant.integer.IntHead``).

The step and the products are the compiling target's best rows, chosen at compile time by
``csrc/src/int/int_kernel_list.h`` from the compiler's target (``-mcpu``): on a Cortex-M4/M7
(DSP extension) ``rnc_int_cell_run_dsp`` with ``rnc_s8_matvec_dsp``, on a Cortex-M55 (MVE)
``rnc_int_cell_run_mve`` with ``rnc_s8_matvec_mve``, elsewhere the portable ``rnc_int_cell_run``
with ``rnc_s8_matvec_generic``; every row is bit for bit the same. ``-DRNC_INT_RUN=<function>``
and ``-DRNC_INT_MATVEC=<function>`` pick other rows. The ``run`` rows are the steps without the
per-call ``rnc_int_cell_check``: ``<name>_reset()`` checks every layer once and ``<name>_step``
refuses to run before a successful reset. The program links the sources of
``csrc/src/int/`` (``int_cells*.c``, ``s8_matvec_*.c``, ``s16_act_mve.c``; the rows a target
does not have compile to nothing). Nothing is allocated; no float is used.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from rnncore.quant.integer import IntModel

_KIND = {"lstm": "RNC_INT_LSTM", "gru": "RNC_INT_GRU", "rnn_tanh": "RNC_INT_RNN_TANH",
         "rnn_relu": "RNC_INT_RNN_RELU"}


_CELL_ARRAYS = (("int8_t", "w_ih"), ("int8_t", "w_hh"), ("int32_t", "b_ih"), ("int32_t", "b_hh"),
                ("int32_t", "m_ih"), ("int32_t", "m_hh"), ("int8_t", "e_ih"), ("int8_t", "e_hh"))


def _c_name(name: str) -> str:
    n = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return "model_" + n if not n or n[0].isdigit() else n


def _r4(n: int) -> int:
    return (n + 3) & ~3


def scratch_bytes(gates: int, hidden: int) -> int:
    """``RNC_INT_SCRATCH_BYTES(G, H)`` of ``rnncore_int.h``."""
    return hidden * 4 + _r4(gates * hidden * 2 + hidden)


def _array(ctype: str, name: str, a) -> tuple[str, int]:
    vals = np.ravel(np.asarray(a)).astype(np.int64)
    body = ",\n    ".join(", ".join(str(int(v)) for v in vals[i:i + 24]) for i in range(0, vals.size, 24))
    size = vals.size * {"int8_t": 1, "int32_t": 4}[ctype]
    return f"static const {ctype} {name}[{vals.size}] RNC_INT_FLASH = {{\n    {body}\n}};\n", size


def export_int_c(model: IntModel, out: str | Path, name: str | None = None) -> dict:
    """Write ``out`` (.c) and its header (same stem, .h); returns the memory budget.

    Parameters
    ----------
    model : an :class:`~rnncore.quant.integer.IntModel` (``quantize_int_model``)
    out : the .c path
    name : C identifier prefix (default: the file's stem)

    Returns
    -------
    dict with ``flash_bytes`` (the const arrays), ``arena_bytes`` (state + scratch),
    ``state_bytes``, ``scratch_bytes`` and ``ram_bytes`` (the arena and the reset's 4-byte flag:
    all the static RAM of the model)
    """
    out = Path(out)
    name = _c_name(name or out.stem)
    up = name.upper()
    arrays, cells, flash = [], [], 0
    state_off, off = [], 0
    for k, c in enumerate(model.layers):
        c.validate()
        p = f"{name}_l{k}_"
        for ctype, field in _CELL_ARRAYS:
            text, n = _array(ctype, p + field, getattr(c, field))
            arrays.append(text)
            flash += n
        cells.append(f"    {{{_KIND[c.cell]}, {c.input_size}, {c.hidden_size}, {int(c.linear_before_reset)}, "
                     f"{p}w_ih, {p}w_hh, {p}b_ih, {p}b_hh, {p}m_ih, {p}m_hh, {p}e_ih, {p}e_hh, "
                     f"{c.m_h}, {c.e_h}, {c.m_rh}, {c.e_rh}, {c.h_zp}, {c.cell_shift}, {c.cell_clip}, "
                     f"{int(c.activation == 'table')}, "
                     f"{'RNC_INT_IN_S16' if c.input_dtype == 'int16' else 'RNC_INT_IN_S8'}}}")
        h8 = off
        off = _r4(off + c.hidden_size)
        s16 = -1
        if c.cell in ("lstm", "gru"):
            s16 = off
            off = _r4(off + 2 * c.hidden_size)
        state_off.append((h8, s16))
    flash += 4 * 21 * len(model.layers)          # the rnc_int_cell structs
    state = off
    scratch = max(scratch_bytes(c.gates, c.hidden_size) for c in model.layers)
    arena = state + scratch
    head = model.head
    head_src = ""
    if head is not None:
        for ctype, field in (("int8_t", "w"), ("int32_t", "b"), ("int32_t", "m_o"), ("int8_t", "e_o")):
            text, n = _array(ctype, f"{name}_head_{field}", getattr(head, field))
            arrays.append(text)
            flash += n
        head_src = (f"static const rnc_int_linear {name}_head_l = {{{head.in_features}, {head.out_features}, "
                    f"{name}_head_w, {name}_head_b, {name}_head_m_o, {name}_head_e_o}};\n\n"
                    f"int {name}_head(int32_t *logits) {{\n"
                    f"    return rnc_int_linear_run(&{name}_head_l, RNC_INT_MATVEC, {name}_output(), "
                    f"logits);\n}}\n")
    last = model.layers[-1]
    L = len(model.layers)
    h8_ptrs = ", ".join(f"(int8_t *){name}_arena + {h}" for h, _ in state_off)
    s16_ptrs = ", ".join("NULL" if s < 0 else f"(int16_t *)((int8_t *){name}_arena + {s})"
                         for _, s in state_off)
    g_max = max(c.gates for c in model.layers)
    h_max = max(c.hidden_size for c in model.layers)

    kinds = "/".join(c.cell for c in model.layers)
    x16 = model.input_dtype == "int16"
    xt = "int16_t" if x16 else "int8_t"
    if x16:
        quant_doc = (f"/* input quantisation (done by the caller): x16 = clamp(round(x / {up}_INPUT_SCALE), "
                     f"-32767, 32767), int16, symmetric */")
    else:
        quant_doc = (f"/* input quantisation (done by the caller): x8 = clamp(round(x / {up}_INPUT_SCALE) + "
                     f"{up}_INPUT_ZERO_POINT) */")
    hdr = f"""/* {out.with_suffix('.h').name}: generated by rnncore export-c --target cortex-m
 * (rnncore.io.export_int_c). A fully-integer {L}-layer {kinds} model; docs/integer.md. */
#ifndef {up}_H
#define {up}_H
#include <stdint.h>

#define {up}_INPUT_SIZE {model.layers[0].input_size}
#define {up}_HIDDEN_SIZE {last.hidden_size}
#define {up}_NUM_LAYERS {L}
#define {up}_ARENA_BYTES {arena}   /* state {state} + scratch {scratch}, static */
#define {up}_FLASH_BYTES {flash}   /* const weights, biases, multipliers, shifts */
{quant_doc}
#define {up}_INPUT_BITS {16 if x16 else 8}   /* the step's input: {xt} */
#define {up}_INPUT_SCALE {model.x_scale!r}
#define {up}_INPUT_ZERO_POINT {model.x_zp}
/* the int8 output h8 stands for {up}_OUTPUT_SCALE * (h8 - {up}_OUTPUT_ZERO_POINT) */
#define {up}_OUTPUT_SCALE {last.h_scale!r}
#define {up}_OUTPUT_ZERO_POINT {last.h_zp}
"""
    if head is not None:
        hdr += (f"#define {up}_NUM_LOGITS {head.out_features}\n"
                f"#define {up}_LOGIT_SCALE {head.out_scale!r}   /* logit = {up}_LOGIT_SCALE * logits[r] */\n")
    hdr += f"""
int {name}_reset(void);                     /* checks the cells once, the zero state; 0 or RNC_INT_E_ARG */
int {name}_step(const {xt} *x);{' ' * (11 - len(xt))}/* x[{up}_INPUT_SIZE]; 0 or RNC_INT_E_* (E_ARG \
before reset) */
const int8_t *{name}_output(void);          /* the last layer's h8[{up}_HIDDEN_SIZE] */
extern const char *const {name}_step_row;   /* the step row compiled in, e.g. "rnc_int_cell_run_dsp" */
extern const char *const {name}_matvec_row; /* the products row, e.g. "rnc_s8_matvec_dsp" */
"""
    if head is not None:
        hdr += f"int {name}_head(int32_t *logits);   /* logits[{up}_NUM_LOGITS] of the current output */\n"
    hdr += "\n#endif\n"

    src = f"""/* {out.name}: generated by rnncore export-c --target cortex-m (rnncore.io.export_int_c).
 * Do not edit. Links the sources of csrc/src/int/. The step and products rows are the target's
 * best (int_kernel_list.h: DSP on Cortex-M4/M7, MVE on Cortex-M55, portable C elsewhere) unless
 * -DRNC_INT_RUN=<function> / -DRNC_INT_MATVEC=<function> name others. The cells are checked once,
 * by the reset; the step calls the rnc_int_cell_run rows, which do not check them again. */
#include <stddef.h>

#include "int_kernel_list.h"
#include "{out.with_suffix('.h').name}"

#ifndef RNC_INT_FLASH
#define RNC_INT_FLASH
#endif
#ifndef RNC_INT_RUN
#define RNC_INT_RUN RNC_INT_CELL_RUN
#endif
#ifndef RNC_INT_MATVEC
#define RNC_INT_MATVEC RNC_S8_MATVEC
#endif
#define {up}_STR2(f) #f
#define {up}_STR(f) {up}_STR2(f)
const char *const {name}_step_row = {up}_STR(RNC_INT_RUN);
const char *const {name}_matvec_row = {up}_STR(RNC_INT_MATVEC);

{''.join(arrays)}
static const rnc_int_cell {name}_cells[{L}] = {{
{(',' + chr(10)).join(cells)}
}};

#define {up}_STATE_BYTES {state}
#define {up}_SCRATCH_BYTES {scratch}
/* compile-time check of the scratch size against rnncore_int.h's formula */
typedef char {name}_scratch_is_enough[
    ({up}_SCRATCH_BYTES >= RNC_INT_SCRATCH_BYTES({g_max}, {h_max})) ? 1 : -1];
static int32_t {name}_arena[{up}_ARENA_BYTES / 4];
static int8_t *const {name}_h8[{L}] = {{{h8_ptrs}}};
static int16_t *const {name}_s16[{L}] = {{{s16_ptrs}}};

static int {name}_checked; /* 1 once the reset has checked every cell */

int {name}_reset(void) {{
    {name}_checked = 0;
    for (int k = 0; k < {L}; k++)
        if (rnc_int_cell_check(&{name}_cells[k]) != RNC_INT_OK) return RNC_INT_E_ARG;
    for (int k = 0; k < {L}; k++) rnc_int_cell_reset(&{name}_cells[k], {name}_h8[k], {name}_s16[k]);
    {name}_checked = 1;
    return RNC_INT_OK;
}}

int {name}_step(const {xt} *x) {{
    if (!{name}_checked) return RNC_INT_E_ARG;
    const void *in = x;
    for (int k = 0; k < {L}; k++) {{
        int rc = RNC_INT_RUN(&{name}_cells[k], RNC_INT_MATVEC, in, {name}_h8[k], {name}_s16[k],
                                   (int8_t *){name}_arena + {up}_STATE_BYTES, {up}_SCRATCH_BYTES);
        if (rc != RNC_INT_OK) return rc;
        in = {name}_h8[k];
    }}
    return RNC_INT_OK;
}}

const int8_t *{name}_output(void) {{ return {name}_h8[{L - 1}]; }}

{head_src}"""
    out.write_text(src)
    out.with_suffix(".h").write_text(hdr)
    return {"flash_bytes": flash, "arena_bytes": arena, "state_bytes": state, "scratch_bytes": scratch,
            "ram_bytes": arena + 4, "input_dtype": model.input_dtype}
