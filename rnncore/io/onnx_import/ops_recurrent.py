"""The ONNX ``RNN``, ``GRU`` and ``LSTM`` operators, every attribute of the spec, as rnncore layers.

Weights are converted to PyTorch's layout: ONNX gate order GRU ``z, r, h`` -> ``r, z, n``,
LSTM ``i, o, f, c`` -> ``i, f, g, o``; ``B = [Wb | Rb]`` -> ``bias_ih``, ``bias_hh``;
``P = [p_i, p_o, p_f]`` -> rows ``p_i, p_f, p_o``.
"""

from __future__ import annotations

import numpy as np

from rnncore.io.onnx_import._registry import register
from rnncore.io.onnx_import._values import _Final, _Input, _Seq, _StateIn, _Zeros

_GATE_PERM = {"RNN": [0], "GRU": [1, 0, 2], "LSTM": [0, 2, 3, 1]}   # ONNX block -> torch position


@register("RNN", "GRU", "LSTM")
def op_recurrent(imp, node, ins, a):
    mode = node.op_type
    X = imp.data(ins[0], node)
    if len(X.axes) != 3 or X.integer:
        imp.refuse(node, f"X must be (T, B, F) or (B, T, F) data, got axes {X.axes}")
    layout = int(a.get("layout", 0))
    imp.resolve_time(X, node, ("T", "B") if layout == 0 else ("B", "T"))
    W, R = imp.const(ins[1], node, "W"), imp.const(ins[2], node, "R")
    given = [("W", W), ("R", R)] + [(n, imp.const(ins[i], node, n)) for i, n in ((3, "B"), (7, "P"))
                                    if len(ins) > i and ins[i] is not None]
    dtypes = {n: t.dtype for n, t in given}
    if any(t.dtype.kind != "f" for _, t in given) or len(set(dtypes.values())) > 1:
        imp.refuse(node, f"W, R, B and P must be floating-point tensors of one type (ONNX type T), "
                         f"got {', '.join(f'{n}: {d}' for n, d in dtypes.items())}")
    W, R = W.astype(np.float64), R.astype(np.float64)
    G = {"RNN": 1, "GRU": 3, "LSTM": 4}[mode]
    if W.ndim != 3 or R.ndim != 3:
        imp.refuse(node, f"W {W.shape} and R {R.shape} must have 3 axes (directions, gates, ...)")
    D, GH, I = W.shape
    H = int(a.get("hidden_size", R.shape[-1]))
    direction = a.get("direction", "forward")
    if {"forward": 1, "reverse": 1, "bidirectional": 2}.get(direction) != D or GH != G * H:
        imp.refuse(node, f"W {W.shape} does not fit direction={direction!r}, hidden_size={H}")
    if R.shape != (D, G * H, H):
        imp.refuse(node, f"R has shape {R.shape}, expected {(D, G * H, H)}")
    if X.sizes[2] is not None and X.sizes[2] != I:
        imp.refuse(node, f"W expects {I} input features, the data has {X.sizes[2]}")
    Bv = ins[3] if len(ins) > 3 and ins[3] is not None else np.zeros((D, 2 * G * H))
    Bv = imp.const(Bv, node, "B").astype(np.float64)
    if Bv.shape != (D, 2 * G * H):
        imp.refuse(node, f"B has shape {Bv.shape}, expected {(D, 2 * G * H)}")
    P = None
    if mode == "LSTM" and len(ins) > 7 and ins[7] is not None:
        P = imp.const(ins[7], node, "P").astype(np.float64)
        if P.shape != (D, 3 * H):
            imp.refuse(node, f"P has shape {P.shape}, expected {(D, 3 * H)}")
    for name, t in (("W", W), ("R", R), ("B", Bv), ("P", P)):
        if t is not None and not np.all(np.isfinite(t)):
            imp.refuse(node, f"{name} holds non-finite values (NaN or Inf): a corrupt model")
    # _GATE_PERM lists, for each torch gate position, the ONNX block it comes from
    perm = np.concatenate([np.arange(H) + H * k for k in _GATE_PERM[mode]])
    sd = {}
    for d in range(D):
        sfx = "_reverse" if (d == 1) else ""
        sd[f"weight_ih_l0{sfx}"] = W[d][perm]
        sd[f"weight_hh_l0{sfx}"] = R[d][perm]
        sd[f"bias_ih_l0{sfx}"] = Bv[d, :G * H][perm]
        sd[f"bias_hh_l0{sfx}"] = Bv[d, G * H:][perm]
        if P is not None:
            p_i, p_o, p_f = P[d].reshape(3, H)
            sd[f"peephole_l0{sfx}"] = np.stack([p_i, p_f, p_o])
    acts = a.get("activations")
    if acts is not None:
        n_acts = {"RNN": 1, "GRU": 2, "LSTM": 3}[mode] * D
        if len(acts) != n_acts:
            imp.refuse(node, f"activations: {mode} with direction={direction!r} takes {n_acts} "
                             f"functions, got {len(acts)}")
        alphas, betas = list(a.get("activation_alpha", [])), list(a.get("activation_beta", []))
        from rnncore.nn.extended import ACTIVATIONS

        spec = []
        for name in acts:
            n_par = ACTIVATIONS.get(name.lower(), (None,))[0]
            if n_par is None:
                imp.refuse(node, f"unknown activation {name!r}")
            al = alphas.pop(0) if n_par >= 1 and alphas else None
            be = betas.pop(0) if n_par >= 2 and betas else None
            spec.append((name, al, be))
        acts = spec
    clip = a.get("clip")
    if clip is not None and not (np.isfinite(clip) and clip > 0):
        imp.refuse(node, f"clip must be a positive finite threshold, got {clip}")
    if H < 1:
        imp.refuse(node, f"hidden_size must be positive, got {H}")
    layer = {"kind": "rnn", "mode": mode, "sd": sd, "input_size": I, "hidden_size": H,
             "bidirectional": D == 2, "reverse": direction == "reverse",
             "reset_after": bool(a.get("linear_before_reset", 0)), "activations": acts,
             "clip": clip, "input_forget": bool(a.get("input_forget", 0)),
             "node": len(imp.rnn_nodes)}
    n = len(imp.rnn_nodes)
    lens = ins[4] if len(ins) > 4 else None
    if lens is not None:
        if not isinstance(lens, _Input):
            imp.refuse(node, "sequence_lens must be a graph input (a constant one is refused)")
        if not lens.integer or len(lens.shape) != 1:
            imp.refuse(node, f"sequence_lens must be a 1-axis integer input (batch,), got {lens.name!r} "
                             f"with shape {lens.shape}{'' if lens.integer else ' of floats'}")
        if imp.lengths not in (None, lens.name):
            imp.refuse(node, "different sequence_lens inputs on different nodes")
        imp.lengths = lens.name
    imp.lengths_nodes.append(lens is not None)
    for k, kind in ((5, "h"), (6, "c")):
        v = ins[k] if len(ins) > k else None
        if v is None or isinstance(v, _Zeros):
            continue
        if isinstance(v, np.ndarray):
            if v.any():   # a learned initial state: the same for every sequence of the batch
                st = np.asarray(v, np.float64)
                if layout == 1 and st.ndim == 3:
                    st = np.swapaxes(st, 0, 1)                              # (D, B, H)
                if st.ndim != 3 or st.shape[0] != D or st.shape[2] != H or not np.all(st == st[:, :1]):
                    imp.refuse(node, f"a constant initial_{kind} of shape {v.shape} that differs between "
                                     "batch rows (a learned initial state is one (D, 1, H) value; feed a "
                                     "per-sequence state as a graph input instead)")
                if not np.all(np.isfinite(st)):
                    imp.refuse(node, f"initial_{kind} holds non-finite values (NaN or Inf)")
                if kind == "c" and mode != "LSTM":
                    imp.refuse(node, "initial_c exists only for an LSTM")
                layer["initial_" + kind] = st[:, 0]
            continue
        axes = ("S", "B", "H") if layout == 0 else ("B", "S", "H")
        if isinstance(v, _StateIn):
            if v.axis != axes.index("S"):
                imp.refuse(node, f"initial_{kind} sliced along axis {v.axis}, not the direction axis")
            imp.states.append((v.name, n, kind, axes, v.rows))
            continue
        if not isinstance(v, _Input):
            imp.refuse(node, f"initial_{kind} must be zeros, absent or a graph input (or rows of one)")
        if v.name == imp.main or v.integer or len(v.shape) != 3 or v.shape[2] not in (None, H):
            imp.refuse(node, f"initial_{kind} {v.name!r} must be a float state input with axes {axes} "
                             f"and H = {H}, not the data input, got shape {v.shape}"
                             f"{' of integers' if v.integer else ''}")
        imp.states.append((v.name, n, kind, axes, None))
    pipe = imp.add_layer(X.pipe, layer)
    imp.rnn_nodes.append(len(imp.layers) - 1)
    imp.node_pipe[n] = pipe
    imp.node_D[n] = D
    ax = ("T", "D", "B", "H") if layout == 0 else ("B", "T", "D", "H")
    sz = (None, D, None, H) if layout == 0 else (None, None, D, H)
    fax = ("S", "B", "H") if layout == 0 else ("B", "S", "H")
    outs = [_Seq(ax, sz, pipe),
            _Final([(n, d, "h") for d in range(D)], fax),
            _Final([(n, d, "c") for d in range(D)], fax)]
    return outs[:len(node.output)]
