"""``rnncore info MODEL.rnc``: what a model file holds and how the C core runs it on this machine.

Layers and sizes, precision and activation scales (q8: static or dynamic), parameters; the ISA
path this machine runs and, per batch size, the kernel-table rows the model's plan picks
(``rnc_model_plan_row``, ``docs/c-api.md``); the memory a stream and a whole-sequence run
need; the file's size, format version and checksum (the stored CRC32, verified, and SHA-256).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import zlib

from rnncore.cli._common import CLIError, batch_list, load_engine, positive_int
from rnncore.io.rnc import _DEFAULT_CELL_ACTS

#: batch from which ``rnc_run`` runs the cells per step on the inputs (csrc/src/model.c
#: RUN_PER_STEP_MIN_BATCH); below it, one input projection over all (b, t) and cells on it
RUN_PER_STEP_MIN_BATCH = 4

_CELL_OP = {"rnn_tanh": "rnn_step", "rnn_relu": "rnn_step", "gru": "gru_step", "lstm": "lstm_step"}



def _scale_kind(s) -> str:
    from rnncore.quant.scheme import BOUNDED_STATE_SCALE

    if s is None:
        return "dynamic"
    return "bounded (1/127)" if float(s) == BOUNDED_STATE_SCALE else "static"


def _scales(x_scale, h_scale=None) -> str:
    """A layer's (or the head's) q8 activation scales in words: "static", "dynamic", or e.g.
    "dynamic input, bounded (1/127) state" (docs/q8-contract.md)."""
    x = _scale_kind(x_scale)
    if h_scale is None:
        return x
    kinds = {_scale_kind(s) for s in h_scale}
    h = kinds.pop() if len(kinds) == 1 else "mixed"
    return x if x == h else f"{x} input, {h} state"

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the .rnc file")
    p.add_argument("--batch", type=batch_list, default=[1, 8, 64], metavar="B[,B...]",
                   help="batch sizes for the plan and memory tables (default 1,8,64)")
    p.add_argument("--seq-len", type=positive_int, default=100, metavar="T",
                   help="sequence length for the whole-sequence rows and scratch (default 100)")
    p.add_argument("--isa", default=None, help="show the plan of this ISA path (default: the one in use)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def header(data: bytes) -> dict:
    """Format version, declared size and CRC32 of ``.rnc`` bytes (``docs/rnc-format.md``), and
    whether the CRC32 matches (``zlib.crc32`` of bytes ``[16, file_size)``)."""
    version, file_size, crc = struct.unpack_from("<III", data, 4)
    actual = zlib.crc32(data[16:file_size]) & 0xFFFFFFFF
    return {"version": version, "file_size": file_size, "crc32": f"{crc:08x}", "crc32_ok": crc == actual}


def _cell_row(engine, k: int, layer: dict, batch: int, input: str, sums: bool, variants: set) -> str:
    """Layer ``k``'s cell row, or, for a layer with cell options (peepholes, clip, projection,
    layer norm, ...: ``variants``), the variant cell (``cells_variant.c``'s portable epilogue) and
    the product row it calls at ``batch`` columns."""
    m = engine._model
    if k in variants:
        prec = "f32" if engine.precision == "f32" else "q8"
        return f"variant cell + {m.plan_row(-1, 'gemv', batch, precision=prec)}"
    return m.plan_row(k, _CELL_OP[layer["kind"]], batch, input, sums)


def _tensor_count(x: object) -> int:
    """Number of values in the arrays inside ``x`` (nested dicts, lists and tuples)."""
    if isinstance(x, dict):
        return sum(_tensor_count(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return sum(_tensor_count(v) for v in x)
    return int(x.size) if hasattr(x, "size") and hasattr(x, "dtype") else 0


def plan_rows(engine, batch: int, steps: int, sums: bool, variants: set = frozenset()) -> dict:
    """The kernel-table rows one streaming step and one whole-sequence run of ``batch`` rows
    (``steps`` steps) call, as ``model.c`` picks them.

    Returns ``{"step": {...}, "run": {...}}``, each with ``cells`` (one row per layer) and, where
    the model uses them, ``quantize`` (q8 activations), ``projection`` (``run`` below
    :data:`RUN_PER_STEP_MIN_BATCH` sequences: the input projection over all (b, t)) and ``head``.
    """
    m = engine._model
    q8 = engine.precision != "f32"  # q8 and q4: q8 activations
    cells_x = [_cell_row(engine, k, layer, batch, "x", sums, variants)
               for k, layer in enumerate(engine.layers)]
    step: dict = {"cells": cells_x}
    if q8:
        step["quantize"] = m.plan_row(-1, "quantize", 1)
    if m.has_head:
        step["head"] = m.plan_row(-1, "gemv", batch, precision="q8" if q8 else "f32")  # q4: a q8 head
    run: dict = {}
    per_step = batch >= RUN_PER_STEP_MIN_BATCH
    bt = batch * steps
    if per_step:
        run["cells"] = cells_x
    else:
        run["cells"] = [_cell_row(engine, k, layer, batch, "gi", sums, variants)
                        for k, layer in enumerate(engine.layers)]
        run["projection"] = m.plan_row(-1, "gemm_deq" if engine.precision == "q8" else "gemv", bt)
    if q8:
        run["quantize"] = step["quantize"]
    if m.has_head:
        run["head"] = m.plan_row(-1, "gemv", batch if m.last_step else bt, precision="q8" if q8 else "f32")
    return {"step": step, "run": run}


def describe(path: str, batches: list[int], steps: int, isa: str | None = None) -> dict:
    """Everything ``rnncore info`` prints, as a dict (the ``--json`` output)."""
    import rnncore as rc
    from rnncore.io.rnc import read_rnc

    data, engine = load_engine(path, isa)
    try:
        d = read_rnc(data)
    except ValueError as e:  # the C loader accepted it; the Python reader should too
        raise CLIError(f"{path}: {e}") from e
    hdr = header(data)
    q8 = d["precision"] != "f32"
    m = engine._model
    layers = []
    variants: set = set()
    total = 0 if d["embedding"] is None else int(d["embedding"]["weight"].size)
    for k, (el, dl) in enumerate(zip(engine.layers, d["layers"], strict=True)):
        n = sum(int(w.size) for w in dl["weights"].values())
        total += n
        entry = {"index": k, "kind": el["kind"], "directions": el["directions"],
                 "input_size": el["input_size"], "hidden_size": el["hidden_size"], "parameters": n}
        if el["kind"] == "gru":
            entry["gru_form"] = "reset_after" if el["reset_after"] else "reset_before"
        opts = dl.get("options")
        if opts is not None:   # peepholes, initial states, W_hr and layer-norm gains are parameters too
            variants.add(k)
            ln = opts.get("layer_norm")
            if ln is not None:
                entry["layer_norm"] = "per gate" if ln["per_gate"] else "joint"
            extra = (_tensor_count([opts.get(key) for key in ("peepholes", "initial_h", "initial_c", "proj")])
                     + (0 if ln is None else _tensor_count([ln[key] for key in ("ih", "hh", "c")])))
            entry["parameters"] += extra
            total += extra
            acts = opts.get("activations")
            default = _DEFAULT_CELL_ACTS[(dl["kind"], dl.get("nonlinearity"))]
            entry["options"] = [key for key in ("reverse", "peepholes", "input_forget", "clip",
                                                "initial_h", "initial_c", "proj", "layer_norm")
                                if opts.get(key) is not None and opts.get(key) is not False]
            if acts is not None and any([a[0] for a in per_dir] != default for per_dir in acts):
                entry["options"].insert(4, "activations")
        if q8:
            entry["scales"] = _scales(dl["x_scale"], dl["h_scale"])
        layers.append(entry)
    steps_records = []
    places = [("front", None, d.get("front", []))]
    places += [("mid", k, recs) for k, recs in enumerate(d.get("mid") or [])]
    places += [("post", None, d.get("post", [])), ("post_pooled", None, d.get("post_pooled", []))]
    for place, after, recs in places:
        for r in recs:
            n = _tensor_count(r.get("tensors", {}))
            steps_records.append({"place": place, "kind": r["kind"], "parameters": n})
            if after is not None:   # between layer `after` and the next
                steps_records[-1]["after_layer"] = after
            total += n
    head = None
    if d["head"] is not None:
        h = d["head"]
        head = {"in_features": int(h["weight"].shape[1]), "out_features": int(h["weight"].shape[0]),
                "activation": h["activation"], "parameters": int(h["weight"].size + h["bias"].size)}
        if q8:
            head["scales"] = _scales(h["in_scale"])
        total += head["parameters"]
    attn = d.get("last_step_attention")
    if attn is not None:
        total += int(sum(t.size for t in attn.values()))
    sums = q8 and hdr["version"] >= 2
    info = {
        "file": path,
        "file_bytes": len(data),
        "format_version": hdr["version"],
        "crc32": hdr["crc32"],
        "crc32_ok": hdr["crc32_ok"],
        "sha256": hashlib.sha256(data).hexdigest(),
        "model": engine.describe(),
        "precision": engine.precision,
        "input": ({"token_ids": True, "vocabulary": m.embed_num,
                   "embedding_dim": int(d["embedding"]["weight"].shape[1])} if engine.uses_ids
                  else {"token_ids": False, "features": engine.input_size}),
        "output_size": engine.output_size,
        "layers": layers,
        "per_step": steps_records,
        "last_step": ("attention" if attn is not None else "concat(" + "|".join(
                          k for k, on in (("last", d.get("last_step_last")),
                                          ("mean", d.get("last_step_mean")),
                                          ("max", d.get("last_step_max"))) if on) + ")"
                      if d.get("last_step_last") or (d.get("last_step_mean") and d.get("last_step_max"))
                      else "mean" if d.get("last_step_mean")
                      else "max" if d.get("last_step_max")
                      else "bidirectional" if d["last_step_bidirectional"] else True)
                     if d["last_step"] else False,
        "attention_size": None if attn is None else int(attn["weight"].shape[0]),
        "head": head,
        "parameters": total,
        "isa": {"in_use": engine.isa, **{k: v for k, v in rc.isa().items() if k != "in_use"}},
        "seq_len": steps,
        "batches": [],
    }
    for b in batches:
        row = {"batch": b, "state_bytes": engine.state_bytes(b),
               "run_scratch_bytes": engine.run_scratch_bytes(b, steps)}
        row["plan"] = plan_rows(engine, b, steps, sums, variants) if not engine.bidirectional else \
            {"run": plan_rows(engine, b, steps, sums, variants)["run"]}
        info["batches"].append(row)
    return info


def _bytes(n: int) -> str:
    if n < 10 * 1024:
        return f"{n} B"
    if n < 10 * 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"


def format_text(info: dict) -> str:
    out = []
    ok = "ok" if info["crc32_ok"] else "MISMATCH"
    out.append(f"{info['file']}: {info['file_bytes']} bytes, .rnc version {info['format_version']}, "
               f"crc32 {info['crc32']} ({ok}), sha256 {info['sha256'][:16]}...")
    inp = info["input"]
    src = (f"token ids < {inp['vocabulary']} (embedding dim {inp['embedding_dim']})" if inp["token_ids"]
           else f"{inp['features']} features")
    out.append(f"model: {info['model']}")
    out.append(f"  precision {info['precision']}, input {src} per step, output {info['output_size']}"
               f"{' (per sequence: last step)' if info['last_step'] else ' per step'}, "
               f"{info['parameters']} parameters")
    where = {"front": "front-end", "post": "per step", "post_pooled": "after last_step",
             "mid": "per step, between layers"}
    for r in info["per_step"]:
        if r["place"] == "front":
            out.append(f"  {where[r['place']]}: {r['kind']}, {r['parameters']} parameters")
    for layer in info["layers"]:
        extra = f", {layer['gru_form']}" if "gru_form" in layer else ""
        opts = [o for o in layer.get("options", []) if o != "layer_norm"]
        extra += f", options: {' '.join(opts)}" if opts else ""
        extra += f", layer norm ({layer['layer_norm']})" if "layer_norm" in layer else ""
        extra += f", {layer['scales']} activation scales" if "scales" in layer else ""
        bi = ", bidirectional" if layer["directions"] == 2 else ""
        out.append(f"  layer {layer['index']}: {layer['kind']} {layer['input_size']} -> "
                   f"{layer['hidden_size']}{bi}{extra}, {layer['parameters']} parameters")
        for r in info["per_step"]:
            if r["place"] == "mid" and r["after_layer"] == layer["index"]:
                out.append(f"  {where[r['place']]}: {r['kind']}, {r['parameters']} parameters")
    for r in info["per_step"]:
        if r["place"] == "post":
            out.append(f"  {where[r['place']]}: {r['kind']}, {r['parameters']} parameters")
    if info["last_step"] == "attention":
        out.append(f"  last_step: attention over each sequence's valid steps (AttentionPool, "
                   f"{info['attention_size']} units)")
    elif str(info["last_step"]).startswith("concat("):
        out.append(f"  last_step: the parts {info['last_step'][6:]} side by side, each over the sequence's "
                   "valid steps (ConcatPool)")
    elif info["last_step"] == "mean":
        out.append("  last_step: the mean over each sequence's valid steps")
    elif info["last_step"] == "max":
        out.append("  last_step: the maximum over each sequence's valid steps (MaskedMax)")
    elif info["last_step"]:
        out.append("  last_step: each sequence's last valid step"
                   + (" (backward half at t=0)" if info["last_step"] == "bidirectional" else ""))
    for r in info["per_step"]:
        if r["place"] == "post_pooled":
            out.append(f"  {where[r['place']]}: {r['kind']}, {r['parameters']} parameters")
    if info["head"]:
        h = info["head"]
        act = "" if h["activation"] == "none" else f", then {h['activation']}"
        sc = f", {h['scales']} activation scales" if "scales" in h else ""
        out.append(f"  head: linear {h['in_features']} -> {h['out_features']}{act}{sc}, "
                   f"{h['parameters']} parameters")
    isa = info["isa"]
    out.append(f"ISA path: {isa['in_use']} (best here {isa['best']}; "
               f"available: {', '.join(isa['available'])})")
    T = info["seq_len"]
    out.append(f"memory per batch (state: one stream; scratch: one run of T={T} steps, on top):")
    for row in info["batches"]:
        out.append(f"  batch {row['batch']:>5}: state {_bytes(row['state_bytes']):>10}, "
                   f"run scratch {_bytes(row['run_scratch_bytes']):>10}")
    out.append(f"kernel-table rows the plan picks on {isa['in_use']} (csrc/src/kernel_list.h):")
    for row in info["batches"]:
        for mode in ("step", "run"):
            if mode not in row["plan"]:
                continue
            p = row["plan"][mode]
            what = "one step (rnc_step)" if mode == "step" else f"whole sequences of T={T} (rnc_run)"
            out.append(f"  batch {row['batch']}, {what}:")
            if "projection" in p:
                out.append(f"    {'input projection':<17} {p['projection']}")
            for k, name in enumerate(p["cells"]):
                out.append(f"    {f'layer {k} cell':<17} {name}")
            for key in ("quantize", "head"):
                if key in p:
                    out.append(f"    {key:<17} {p[key]}")
    return "\n".join(out)


def describe_int(path: str, data: bytes) -> dict:
    """``rnncore info`` of a fully-integer file (precision 3): what it holds and its Cortex-M memory
    budget (what ``export-c --target cortex-m`` reports)."""
    import tempfile
    from pathlib import Path

    from rnncore.io.export_int_c import export_int_c
    from rnncore.io.rnc import read_rnc

    try:
        qm = read_rnc(data)["int_model"]
    except ValueError as e:
        raise CLIError(f"{path}: {e}") from e
    hdr = header(data)
    layers, total = [], 0
    for k, c in enumerate(qm.layers):
        n = int(c.w_ih.size + c.w_hh.size + c.b_ih.size + c.b_hh.size)
        total += n
        entry = {"index": k, "kind": c.cell, "input_size": c.input_size, "hidden_size": c.hidden_size,
                 "activation": c.activation, "x_scale": c.x_scale, "x_zero_point": c.x_zp,
                 "h_scale": c.h_scale, "h_zero_point": c.h_zp, "parameters": n}
        if c.cell == "gru":
            entry["gru_form"] = "reset_after" if c.linear_before_reset else "reset_before"
        if c.cell == "lstm":
            entry["cell_scale"] = f"2^{c.cell_shift}"
        layers.append(entry)
    head = None
    if qm.head is not None:
        h = qm.head
        head = {"in_features": h.in_features, "out_features": h.out_features, "activation": h.activation,
                "logit_scale": h.out_scale, "parameters": int(h.w.size + h.b.size)}
        total += head["parameters"]
    with tempfile.TemporaryDirectory() as tmp:
        budget = export_int_c(qm, Path(tmp) / "m.c")
    return {"file": path, "file_bytes": len(data), "format_version": hdr["version"], "crc32": hdr["crc32"],
            "crc32_ok": hdr["crc32_ok"], "sha256": hashlib.sha256(data).hexdigest(), "precision": "int8",
            "input": {"features": qm.layers[0].input_size, "scale": qm.x_scale, "zero_point": qm.x_zp},
            "output_size": head["out_features"] if head else qm.layers[-1].hidden_size,
            "layers": layers, "last_step": qm.last_step, "head": head, "parameters": total,
            "host_engine": _int_host(data), "cortex_m": budget}


def _int_host(data: bytes) -> str:
    """The host engine's path for an integer file: its ISA and the integer rows its plan runs."""
    from rnncore.engine import Engine

    m = Engine(data)._model
    rows = sorted({m.plan_row(k, "int_step", 1) for k in range(len(m.layers))}
                  | {m.plan_row(-1, "s8_matvec", 1, precision="int8")})
    return f"runs it (ISA {m.isa}: {', '.join(rows)}, the portable integer step)"


def format_int_text(info: dict) -> str:
    ok = "ok" if info["crc32_ok"] else "MISMATCH"
    inp = info["input"]
    out = [f"{info['file']}: {info['file_bytes']} bytes, .rnc version {info['format_version']}, "
           f"crc32 {info['crc32']} ({ok}), sha256 {info['sha256'][:16]}...",
           f"model: fully-integer (precision int8, docs/integer.md), input {inp['features']} features per "
           f"step as int8 (scale {inp['scale']:.6g}, zero point {inp['zero_point']}), output "
           f"{info['output_size']}{' (per sequence: last step)' if info['last_step'] else ' per step'}, "
           f"{info['parameters']} parameters"]
    for layer in info["layers"]:
        extra = f", {layer['gru_form']}" if "gru_form" in layer else ""
        extra += f", cell scale {layer['cell_scale']}" if "cell_scale" in layer else ""
        out.append(f"  layer {layer['index']}: {layer['kind']} {layer['input_size']} -> "
                   f"{layer['hidden_size']}{extra}, {layer['activation']} sigmoid/tanh, "
                   f"h scale {layer['h_scale']:.6g} zero point "
                   f"{layer['h_zero_point']}, {layer['parameters']} parameters")
    if info["last_step"]:
        out.append("  last_step: each sequence's last valid step")
    if info["head"]:
        h = info["head"]
        act = "" if h["activation"] == "none" else f", then {h['activation']}"
        out.append(f"  head: integer linear {h['in_features']} -> {h['out_features']}{act}, logits on one "
                   f"scale {h['logit_scale']:.6g}, {h['parameters']} parameters")
    b = info["cortex_m"]
    out.append(f"host engine: {info['host_engine']}; rnncore export-c --target cortex-m compiles it:")
    out.append(f"  Cortex-M: {b['flash_bytes']} bytes const (flash), {b['arena_bytes']} bytes static arena "
               f"(state {b['state_bytes']} + scratch {b['scratch_bytes']})")
    return "\n".join(out)


def run(args: argparse.Namespace) -> None:
    try:
        with open(args.model, "rb") as f:
            first = f.read(24)
    except OSError:
        first = b""   # describe() names the problem
    if len(first) == 24 and struct.unpack_from("<I", first, 4)[0] == 2 and struct.unpack_from(
            "<I", first, 20)[0] == 3:   # version 2, precision 3: a fully-integer model
        from rnncore.cli._common import read_model_bytes

        info = describe_int(args.model, read_model_bytes(args.model))
        print(json.dumps(info, indent=2) if args.json else format_int_text(info))
        return
    info = describe(args.model, args.batch, args.seq_len, args.isa)
    print(json.dumps(info, indent=2) if args.json else format_text(info))
