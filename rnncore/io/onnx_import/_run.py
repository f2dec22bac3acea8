"""Run an imported model with the ONNX graph's input and output names and layouts."""

from __future__ import annotations

import numpy as np

from rnncore.io.onnx_import._values import OnnxSignature
from rnncore.nn.module import Module
from rnncore.nn.recurrent import _Recurrent


def onnx_run(model: Module, feeds: dict) -> dict:
    """Run an imported model with the ONNX graph's input names and layouts.

    Returns ``{output name: array}`` shaped as the ONNX graph's outputs. A sequence of length 0
    gets ONNX's semantics (onnxruntime's): zero ``Y`` and zero final states ``Y_h`` / ``Y_c``,
    where rnncore's layers and engine keep the initial state (docs/equations.md, "Sequences of
    length 0"). An
    :class:`~rnncore.io.onnx_import._graph.OnnxGraph` runs its graph (``model.run(feeds)``).
    """
    if hasattr(model, "output_names") and hasattr(model, "run"):
        return model.run({k: v for k, v in feeds.items() if k in model.input_names})
    sig: OnnxSignature = model.onnx_io
    x = np.asarray(feeds[sig.input])
    if sig.input_layout == "TB":
        x = np.swapaxes(x, 0, 1)
    if x.dtype.kind == "f":
        x = x.astype(_dtype_of(model))
    B = x.shape[0]
    lengths = feeds.get(sig.lengths) if sig.lengths is not None else None
    lengths = None if lengths is None else np.asarray(lengths)
    recs = [m for m in (model if hasattr(model, "recurrent_modules") else [model])
            if getattr(m, "is_recurrent", False)]
    init = [None] * len(recs)
    for name, n, kind, axes, rows in sig.states:
        if feeds.get(name) is None:
            continue
        r, j = sig.node_rows[n]
        m, D = recs[r], sig.directions[n]
        v = np.asarray(feeds[name], _dtype_of(model))
        v = np.transpose(v, [axes.index(a) for a in ("S", "B", "H")])        # (S, B, H)
        if rows is not None:
            v = v[rows]                                                        # (D, B, H)
        if init[r] is None:
            L = m.num_layers * (2 if m.bidirectional else 1)
            P = getattr(m, "proj_size", 0) or m.hidden_size
            dt = _dtype_of(model)
            init[r] = [np.zeros((L, B, P), dt)]
            if _mode_of(m) == "LSTM":
                init[r].append(np.zeros((L, B, m.hidden_size), dt))
        init[r][0 if kind == "h" else 1][j * D:(j + 1) * D] = v
    init = [None if s is None else (tuple(s) if len(s) == 2 else s[0]) for s in init]
    if len(recs) == 1 and recs[0] is model:
        run_lengths, empty = lengths, None
        if (lengths is not None and isinstance(model, _Recurrent) and lengths.size and (lengths == 0).any()
                and lengths.min() >= 0 and lengths.max() <= x.shape[1]):
            # the plain rc.nn layers refuse length 0 (docs/equations.md, "Sequences of length
            # 0"); ONNX's result for an empty sequence is zero Y at every step and zero final
            # states whatever the initial state, so run it for one step and write ONNX's zeros
            # over its Y here and over its states below (lengths out of range go to the layer
            # as they are, which names them)
            empty = lengths == 0
            run_lengths = np.where(empty, 1, lengths)
        y, h = model.forward(x, state=init[0], lengths=run_lengths)
        if empty is not None:
            y = np.where(empty[:, None, None], 0, y).astype(y.dtype)
        finals = [h]
    else:
        y = model.forward(x, lengths=lengths, state=init)
        finals = model.final_states
    out = {}
    for item in sig.outputs:
        name, kind = item[0], item[1]
        if kind == "y":
            axes = item[2]
            if "D" in axes:
                D = sig.directions[max(sig.node_rows, key=sig.node_rows.get)]
                yy = y.reshape(y.shape[0], y.shape[1], D, -1)
                canon = ("B", "T", "D", "H")
            elif "T1" in axes:                    # the last step kept as an axis of size 1
                yy, canon = y[:, None], ("B", "T1", "F")
            elif len(axes) == 3:
                yy, canon = y, ("B", "T", "F")
            else:
                yy, canon = y, ("B", "F")
            out[name] = np.transpose(yy, [canon.index(a) for a in axes])
        else:
            entries, axes = item[2], item[3]
            rows = []
            for n, d, hc in entries:
                r, j = sig.node_rows[n]
                f = finals[r]
                f = (f[0] if hc == "h" else f[1]) if isinstance(f, tuple) else f
                row = f[j * sig.directions[n] + d]
                if lengths is not None and (lengths == 0).any():   # ONNX: an empty sequence's state is 0
                    row = np.where((lengths == 0)[:, None], 0, row).astype(row.dtype)
                rows.append(row)
            st = np.stack(rows)                                             # (S, B, H)
            if axes == ("B", "H"):
                out[name] = np.concatenate(rows, axis=-1)
            else:
                out[name] = np.transpose(st, [("S", "B", "H").index(a) for a in axes])
    return out


def _dtype_of(model: Module):
    return next(v for _, v in model.named_parameters()).dtype


def _mode_of(m: Module) -> str:
    return getattr(m, "mode", type(m).__name__).upper()
