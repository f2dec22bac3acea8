"""Write the C tests' model files and expected outputs into a directory.

Each case is ``<name>.rnc`` (format version 2, written by ``rnncore.io.rnc.write_rnc``), the same
model as version 1 in ``<name>.v1.rnc`` (not for models with cell options, which v1 cannot hold;
test_main.c checks both load and give bit-identical
outputs) and ``<name>.case`` (inputs, expected outputs and final states; layout in ``write_case``). Expected values come from
``rnncore.quant.reference`` (independent NumPy code): the float64 reference for f32 models, the
q8 reference for q8 models. For q8 the reference's sigmoid/tanh are replaced by NumPy float32
transcriptions of the C core's fast activations (same operations in the same order), so the C
outputs must match the q8 reference to float32 rounding of softmax's exp only; without that
substitution an activation difference of 4e-7 may flip the rounding of one int8 of h.

Usage: python gen_vectors.py OUTDIR
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rnncore.io.rnc import read_rnc, write_rnc  # noqa: E402
from rnncore.quant import reference  # noqa: E402
from rnncore.quant.reference import qmodel_from_rnc  # noqa: E402
from rnncore.quant.scheme import BOUNDED_STATE_SCALE  # noqa: E402
from rnncore.quant.spec import CellWeights, LayerSpec, LinearSpec, ModelSpec  # noqa: E402

F32 = np.float32
GATES = {"rnn": 1, "gru": 3, "lstm": 4}

# ---- the C core's fast activations, transcribed operation by operation (float32) ----------
_P = [-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
      1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03]
_Q = [1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03]
_CLAMP = F32(7.90531110763549805)


def c_tanh(x):
    x = np.asarray(x, F32)
    x = np.minimum(np.maximum(x, -_CLAMP), _CLAMP).astype(F32)
    x2 = (x * x).astype(F32)
    p = np.full_like(x, F32(_P[0]))
    for c in _P[1:]:
        p = (p * x2 + F32(c)).astype(F32)
    p = (p * x).astype(F32)
    q = np.full_like(x, F32(_Q[0]))
    for c in _Q[1:]:
        q = (q * x2 + F32(c)).astype(F32)
    r = (p / q).astype(F32)
    return np.clip(r, F32(-1), F32(1)).astype(F32)


def c_sigmoid(x):
    x = np.asarray(x, F32)
    return (F32(0.5) + F32(0.5) * c_tanh(F32(0.5) * x)).astype(F32)


class _NpWithCTanh:
    """numpy, except tanh is the C core's (float32 inputs only, as in the q8 path)."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def tanh(x):
        x = np.asarray(x)
        return c_tanh(x) if x.dtype == F32 else np.tanh(x)


def q8_reference_forward(qmodel, X, lengths, state=None):
    saved = reference.sigmoid, reference.np
    reference.sigmoid = lambda a: c_sigmoid(a) if a.dtype == F32 else saved[0](a)
    reference.np = _NpWithCTanh()
    try:
        return reference.q8_forward(qmodel, X, lengths, state)
    finally:
        reference.sigmoid, reference.np = saved


def float_spec(d: dict) -> ModelSpec:
    """The reference's float model of a read_rnc() description (f32 files: the exact weights)."""
    layers = []
    for layer in d["layers"]:
        kind = layer["kind"] if layer["kind"] != "rnn" else "rnn_" + layer["nonlinearity"]
        w = layer["weights"]
        dirs = [CellWeights(w["weight_ih" + s], w["weight_hh" + s], w["bias_ih" + s], w["bias_hh" + s])
                for s in ("", "_reverse")[: 2 if layer["bidirectional"] else 1]]
        layers.append(LayerSpec(kind, layer["input_size"], layer["hidden_size"], dirs,
                                bool(layer.get("reset_after", True))))
    head = d["head"]
    return ModelSpec(
        layers=layers,
        embedding=None if d["embedding"] is None else d["embedding"]["weight"],
        last_step=d["last_step"],
        last_step_bidirectional=d["last_step_bidirectional"],
        head=None if head is None else LinearSpec(head["weight"], head["bias"], head["activation"]),
    )


# ---- model construction --------------------------------------------------------------------
def make_spec(rng, kind, sizes, precision, bidirectional=False, nonlinearity="tanh", reset_after=True,
              head=None, head_act="none", embedding=None, last_step=False, last_bidir=False,
              scales=None, options=None, bounded=False, front=False, last_mean=False, resid=False,
              last_attn=None, last_max=False, last_last=False):
    """bounded: the bounded state scale 1/127 (state_scale="bounded") on every state, every layer
    input but the first (dynamic, or scales[0]) and the head input. front: per-step records before
    the layers (frame_conv with groups and reflect padding, magnitude, relu, layer_norm, a dilated
    frame_conv, scale_shift, hardsigmoid: 16 features in, 12 out; sizes[0] must be 12); "conv":
    causal conv_time records (dilated, grouped), a residual block and a layer_norm instead; "kws":
    log_mel (32 samples per step), conv_time, relu, max and average pooling over time; "timepad":
    padding over time (timepad tails: a Conv1d 'same', a max pooling padded (1, 1) at stride 2, an
    average pooling (1, 1) with count_include_pad=False, a dilated Conv1d padded (2, 1)); "kws512":
    log_mel alone (n_fft 512, 40 mels); "strided": q8 Conv1d over time at strides 2, 2, 3 (causal;
    padded; padded beyond its reach); "mul": mul_halves records (the product of the two halves of
    the features, Keras Bidirectional merge_mode "mul") before the layers (2 sizes[0] features in),
    between each two of them and after the last. last_mean: with last_step, the mean pooling (format
    version 2); last_attn: with last_step, attention pooling of that many units (format version 2);
    last_max: with last_step, the max pooling (format version 2). last_last: with last_mean and/or
    last_max, the last step as a part too (the pooled row [last | mean | max], rc.nn.ConcatPool).
    resid: residuals around the recurrent layers (their span crosses the recurrent
    record; every layer as wide as its input): y = x + layer(x) between the layers, and after the
    last relu(layer(x)) plus the input of the record before the last layer (the front-end's last
    record's with a front-end, else the last layer's)."""
    layers, feat = [], sizes[0]
    front_records = []
    if front is True or front == "q16":   # "q16": the same with 16 x 16 frame_convs (front_bits=16)
        def conv(ci, co, k, L, **kw):
            w = (rng.standard_normal((co, ci // kw.get("groups", 1), k)) * 0.5).astype(F32)
            return {"kind": "frame_conv1d", "in_channels": ci, "out_channels": co, "kernel_size": k,
                    "frame_length": L, **kw, **({"bits": 16} if front == "q16" else {}),
                    "tensors": {"weight": w, "bias": (rng.standard_normal(co) * 0.2).astype(F32)}}
        front_records = [
            conv(2, 6, 3, 8, stride=2, groups=2, pad_left=1, pad_right=2, padding_mode="reflect"),   # 6 x 5
            {"kind": "magnitude"}, {"kind": "relu"},                                                # 15
            {"kind": "layer_norm", "features": 15, "eps": 1e-5,
             "tensors": {"weight": rng.uniform(0.5, 1.5, 15).astype(F32),
                         "bias": rng.uniform(-0.5, 0.5, 15).astype(F32)}},
            conv(3, 4, 2, 5, dilation=2),                                                           # 4 x 3
            {"kind": "scale_shift", "features": 12,
             "tensors": {"scale": rng.uniform(0.5, 1.5, 12).astype(F32),
                         "shift": rng.uniform(-0.5, 0.5, 12).astype(F32)}},
            {"kind": "hard_sigmoid", "alpha": 0.2, "beta": 0.5},
        ]
        assert sizes[0] == 12
    if front == "kws":   # log_mel (n_fft 32, 8 mels), conv_time, relu, max and average pooling over time
        from rnncore.nn.melspec import LogMelSpectrogram

        w = (rng.standard_normal((12, 8, 3)) * 0.5).astype(F32)
        front_records = [
            LogMelSpectrogram(8000, n_fft=32, hop_length=16, n_mels=8, center=False).record(),
            {"kind": "conv1d", "in_channels": 8, "out_channels": 12, "kernel_size": 3, "pad_left": 2,
             "tensors": {"weight": w, "bias": (rng.standard_normal(12) * 0.2).astype(F32)}},
            {"kind": "relu"},
            {"kind": "max_pool1d", "channels": 12, "kernel_size": 2, "stride": 2},
            {"kind": "avg_pool1d", "channels": 12, "kernel_size": 2, "stride": 1},
        ]
        assert sizes[0] == 12
    if front == "timepad":   # padding on both sides of the time axis: look-ahead, flushed by rnc_run
        def pconv(ci, co, k, **kw):
            w = (rng.standard_normal((co, ci // kw.get("groups", 1), k)) * 0.5).astype(F32)
            return {"kind": "conv1d", "in_channels": ci, "out_channels": co, "kernel_size": k, **kw,
                    "tensors": {"weight": w, "bias": (rng.standard_normal(co) * 0.2).astype(F32)}}
        front_records = [
            pconv(16, 12, 5, groups=4, pad_left=2, pad_right=2), {"kind": "relu"},
            {"kind": "max_pool1d", "channels": 12, "kernel_size": 3, "stride": 2, "pad_left": 1, "pad_right": 1},
            {"kind": "avg_pool1d", "channels": 12, "kernel_size": 3, "stride": 1, "pad_left": 1,
             "pad_right": 1, "count_include_pad": False},
            pconv(12, 12, 3, dilation=2, pad_left=2, pad_right=1),
        ]
    if front == "strided":   # q8 convolutions over time at a stride: causal, padded, padded beyond P
        def sconv(ci, co, k, **kw):
            w = (rng.standard_normal((co, ci // kw.get("groups", 1), k)) * 0.5).astype(F32)
            return {"kind": "conv1d", "in_channels": ci, "out_channels": co, "kernel_size": k, **kw,
                    "tensors": {"weight": w, "bias": (rng.standard_normal(co) * 0.2).astype(F32)}}
        front_records = [
            sconv(16, 12, 3, stride=2, groups=2, pad_left=2), {"kind": "relu"},
            sconv(12, 12, 3, stride=2, dilation=2, pad_left=2, pad_right=1),
            sconv(12, 12, 2, stride=3, pad_left=1, pad_right=1),
        ]
    if front == "kws512":   # log_mel alone at the keyword-spotting size: 16 kHz, 25 ms window in n_fft 512
        from rnncore.nn.melspec import LogMelSpectrogram

        front_records = [LogMelSpectrogram(16000, n_fft=512, win_length=400, hop_length=160, n_mels=40,
                                           center=False).record()]
        assert sizes[0] == 40
    if front == "mul":
        front_records = [{"kind": "mul_halves"}]
    if front == "conv":   # causal convolutions over time (the window in the state) and a residual block
        def tconv(ci, co, k, **kw):
            w = (rng.standard_normal((co, ci // kw.get("groups", 1), k)) * 0.5).astype(F32)
            return {"kind": "conv1d", "in_channels": ci, "out_channels": co, "kernel_size": k, **kw,
                    "tensors": {"weight": w, "bias": (rng.standard_normal(co) * 0.2).astype(F32)}}
        front_records = [
            tconv(16, 12, 3, dilation=2, groups=4, pad_left=4), {"kind": "relu"},
            tconv(12, 12, 2, pad_left=1), {"kind": "hard_sigmoid", "alpha": 0.2, "beta": 0.5},
            {"kind": "residual", "span": 2},
            {"kind": "layer_norm", "features": 12, "eps": 1e-5,
             "tensors": {"weight": rng.uniform(0.5, 1.5, 12).astype(F32),
                         "bias": rng.uniform(-0.5, 0.5, 12).astype(F32)}},
        ]
    for h in sizes[1:]:
        g = GATES[kind]
        w = {}
        for suf in [""] + (["_reverse"] if bidirectional else []):
            w["weight_ih" + suf] = (rng.standard_normal((g * h, feat)) * 0.6).astype(F32)
            w["weight_hh" + suf] = (rng.standard_normal((g * h, h)) * 0.6).astype(F32)
            w["bias_ih" + suf] = (rng.standard_normal(g * h) * 0.3).astype(F32)
            w["bias_hh" + suf] = (rng.standard_normal(g * h) * 0.3).astype(F32)
        layer = {"kind": kind, "bidirectional": bidirectional, "weights": w, "nonlinearity": nonlinearity,
                 "reset_after": reset_after}
        if scales:
            layer["x_scale"] = scales[0]
            layer["h_scale"] = [scales[1]] * (2 if bidirectional else 1)
        if options is not None:   # cell options; "peepholes" / "initial" True: random tensors
            o, D = dict(options), 2 if bidirectional else 1
            if o.pop("peepholes", False):
                o["peepholes"] = (rng.standard_normal((D, 3, h)) * 0.5).astype(F32)
            if o.pop("initial", False):
                o["initial_h"] = (rng.standard_normal((D, h)) * 0.5).astype(F32)
                if kind == "lstm":
                    o["initial_c"] = (rng.standard_normal((D, h)) * 0.5).astype(F32)
            if "activations" in o:
                o["activations"] = [o["activations"]] * D
            if o.get("layer_norm") is not None:   # {"per_gate": bool}: random gains and shifts
                n = g * h
                ln = {"per_gate": o["layer_norm"].get("per_gate", True), "eps": 1e-5}
                for key, m in (("ih", n), ("hh", n)) + ((("c", h),) if kind == "lstm" else ()):
                    ln[key] = np.stack([rng.uniform(0.5, 1.5, (D, m)), rng.uniform(-0.5, 0.5, (D, m))],
                                       axis=1).astype(F32)
                o["layer_norm"] = ln
            if isinstance(o.get("proj"), int):   # LSTM projection to P: W_hr (D, P, H), W_hh (4H, P)
                p = o["proj"]
                o["proj"] = (rng.standard_normal((D, p, h)) * 0.5).astype(F32)
                for suf in [""] + (["_reverse"] if bidirectional else []):
                    w["weight_hh" + suf] = (rng.standard_normal((4 * h, p)) * 0.6).astype(F32)
                if "initial_h" in o:
                    o["initial_h"] = o["initial_h"][:, :p].copy()
                layer["hidden_size"] = h
                h = p   # the next layer's input width
            layer["options"] = o
        if bounded:
            layer["h_scale"] = [BOUNDED_STATE_SCALE] * (2 if bidirectional else 1)
            if layers:
                layer["x_scale"] = BOUNDED_STATE_SCALE
        layers.append(layer)
        feat = h * (2 if bidirectional else 1)
        if front == "mul":   # a mul_halves record after every layer (between two, or after the last)
            feat //= 2
    spec = {"precision": precision, "layers": layers,
            "input_size": 32 if front == "kws" else 512 if front == "kws512" else 2 * sizes[0]
            if front == "mul" else 16 if front else sizes[0],
            "last_step": last_step, "last_step_bidirectional": last_bidir, "last_step_mean": last_mean,
            "last_step_max": last_max, "last_step_last": last_last}
    if last_step and (last_mean or last_max):   # the pooled row: [last | mean | max] of those present
        feat *= int(last_last) + int(last_mean) + int(last_max)
    if last_attn:
        spec["last_step_attention"] = {"weight": (rng.standard_normal((last_attn, feat)) * 0.5).astype(F32),
                                       "bias": (rng.standard_normal(last_attn) * 0.1).astype(F32),
                                       "score": rng.standard_normal(last_attn).astype(F32)}
    if front:
        spec["front"] = front_records
    if front == "mul":
        spec["mid"] = [[{"kind": "mul_halves"}] for _ in layers[1:]]
        spec["post_pooled" if last_step else "post"] = [{"kind": "mul_halves"}]
    if resid:
        spec["mid"] = [[{"kind": "residual", "span": 1}] for _ in layers[1:]]
        spec["post"] = [{"kind": "relu"}, {"kind": "residual", "span": 3 if front_records else 2}]
    if head:
        spec["head"] = {"weight": (rng.standard_normal((head, feat)) * 0.5).astype(F32),
                        "bias": (rng.standard_normal(head) * 0.2).astype(F32), "activation": head_act}
        if scales:
            spec["head"]["in_scale"] = scales[1]
        if bounded:
            spec["head"]["in_scale"] = BOUNDED_STATE_SCALE
    if embedding:
        spec["embedding"] = {"weight": rng.standard_normal((embedding, sizes[0])).astype(F32)}
    return spec


def flat_state(final):
    hs = [s[0] if isinstance(s, tuple) else s for s in final]
    cs = [s[1] for s in final if isinstance(s, tuple)]
    h = np.concatenate([np.asarray(a, F32).reshape(-1) for a in hs])
    c = np.concatenate([np.asarray(a, F32).reshape(-1) for a in cs]) if cs else np.zeros(0, F32)
    return h, c


def write_case(out: Path, name: str, spec: dict, batch: int, steps: int, mode: str, rng,
               lengths=None, atol=1e-4, rtol=1e-4):
    """<name>.case, little-endian:
    u32 magic 'CASE', u32 mode (0 stream with rnc_step, 1 rnc_run), u32 B, T, in_w, out_w,
    uses_ids, has_lengths, pooled; f32 atol, rtol; x (B,T,in_w) f32 or ids (B,T) i32;
    lengths (B) i32 if has_lengths; y (B,T,out_w) or (B,out_w) when pooled;
    u32 nh, h (nh f32); u32 nc, c (nc f32).
    """
    data = write_rnc(spec, version=2)
    (out / f"{name}.rnc").write_bytes(data)
    if not any(layer.get("options") for layer in spec["layers"]) and not spec.get("front"):   # v2 only
        (out / f"{name}.v1.rnc").write_bytes(write_rnc(spec, version=1))
    desc = read_rnc(data)
    uses_ids = spec.get("embedding") is not None
    in_w = 1 if uses_ids else spec["input_size"]
    if uses_ids:
        x = rng.integers(0, spec["embedding"]["weight"].shape[0], (batch, steps)).astype(np.int32)
    else:
        x = rng.standard_normal((batch, steps, in_w)).astype(F32)
    lens = None if lengths is None else np.asarray(lengths, np.int64)
    if spec["precision"] == "q8":
        y, final = q8_reference_forward(qmodel_from_rnc(desc), x, lens)
    elif any(layer.get("options") for layer in desc["layers"]):
        from rnncore.spec import spec_from_rnc

        y, final = reference.float_forward(spec_from_rnc(desc), x, lens, dtype=np.float64)
    else:
        y, final = reference.float_forward(float_spec(desc), x, lens, dtype=np.float64)
    y = np.asarray(y, F32)
    h, c = flat_state(final)
    pooled = bool(spec.get("last_step"))
    out_w = y.shape[-1]
    blob = struct.pack("<9I2f", 0x45534143, 0 if mode == "stream" else 1, batch, steps, in_w, out_w,
                       int(uses_ids), int(lengths is not None), int(pooled), atol, rtol)
    blob += x.astype(np.int32 if uses_ids else F32).tobytes()
    if lengths is not None:
        blob += np.asarray(lengths, np.int32).tobytes()
    blob += y.tobytes()
    blob += struct.pack("<I", h.size) + h.tobytes() + struct.pack("<I", c.size) + c.tobytes()
    (out / f"{name}.case").write_bytes(blob)


def write_int_case(out: Path, name: str, kinds, sizes, head, last_step, activation, batch: int, steps: int,
                   mode: str, rng, lengths=None):
    """A fully-integer model (precision 3, rnncore.quant.integer) in the same .case format, with
    tolerances 0: the engine's outputs and final state are the spec's bit for bit. Each row is
    the spec on its own sequence cut at its length (rows past it keep their state, y zero); the
    state is the floats the integers stand for (docs/c-api.md, "Fully-integer models")."""
    import warnings

    import rnncore as rc
    from rnncore.io.rnc_int import write_int_rnc
    from rnncore.quant import integer as qi

    mods = []
    for n, k in enumerate(kinds):
        i, h = sizes[n], sizes[n + 1]
        mods.append(rc.nn.GRU(i, h, seed=n, reset_after=(k == "gru")) if k.startswith("gru")
                    else rc.nn.LSTM(i, h, seed=n) if k == "lstm"
                    else rc.nn.RNN(i, h, nonlinearity=k[4:], seed=n))
    if last_step:
        mods.append(rc.nn.LastStep())
    if head:
        mods.append(rc.nn.Linear(sizes[-1], head, seed=9))
    model = rc.nn.Sequential(*mods)
    x = rng.standard_normal((batch, steps, sizes[0])).astype(F32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qm = qi.quantize_int_model(model, qi.calibrate_int(model, x), activation=activation)
    (out / f"{name}.rnc").write_bytes(write_int_rnc(qm))
    lens = np.full(batch, steps) if lengths is None else np.asarray(lengths)
    out_w = qm.head.out_features if qm.head else qm.layers[-1].hidden_size
    y = np.zeros((batch, out_w) if last_step else (batch, steps, out_w), F32)
    hs = [np.zeros((batch, c.hidden_size), F32) for c in qm.layers]
    cs = [np.zeros((batch, c.hidden_size), F32) for c in qm.layers]
    for b in range(batch):
        n = int(lens[b])
        x8 = qi.quantize_s8(x[b:b + 1, :n], qm.x_scale, qm.x_zp)
        for k, c in enumerate(qm.layers):
            x8, st = qi.int_cell_sequence(c, x8)
            if c.cell == "gru":
                hs[k][b] = st[1][0] / 2.0 ** 15
            else:
                hs[k][b] = qi.dequantize_s8(st[0][0], c.h_scale, c.h_zp)
            if c.cell == "lstm":
                cs[k][b] = st[1][0] * 2.0 ** c.cell_shift
        if n:
            yb = qi.int_forward(qm, x[b:b + 1, :n])[0][0]
            if last_step:
                y[b] = yb
            else:
                y[b, :n] = yb
    h = np.concatenate([a.reshape(-1) for a in hs])
    c = np.concatenate([cs[k].reshape(-1) for k, cl in enumerate(qm.layers) if cl.cell == "lstm"] or
                       [np.zeros(0, F32)])
    blob = struct.pack("<9I2f", 0x45534143, 0 if mode == "stream" else 1, batch, steps, sizes[0], out_w, 0,
                       int(lengths is not None), int(last_step), 0.0, 0.0)
    blob += x.tobytes()
    if lengths is not None:
        blob += np.asarray(lengths, np.int32).tobytes()
    blob += y.tobytes()
    blob += struct.pack("<I", h.size) + h.astype(F32).tobytes()
    blob += struct.pack("<I", c.size) + c.astype(F32).tobytes()
    (out / f"{name}.case").write_bytes(blob)


def main(outdir: str) -> None:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261125)
    q8 = {"atol": 2e-6, "rtol": 2e-6}
    cases = [
        # name, spec kwargs, batch, steps, mode, lengths, tolerances
        ("gru_f32_stream", dict(kind="gru", sizes=[3, 5], precision="f32"), 2, 6, "stream", None, {}),
        ("gru_q8_stream", dict(kind="gru", sizes=[3, 5], precision="q8"), 2, 6, "stream", None, q8),
        ("lstm_q8_stack_head", dict(kind="lstm", sizes=[4, 17, 9], precision="q8", head=3,
                                    head_act="softmax"), 3, 5, "stream", None, q8),
        ("lstm_f32_stack_head", dict(kind="lstm", sizes=[4, 17, 9], precision="f32", head=3,
                                     head_act="softmax"), 3, 5, "stream", None, {}),
        ("rnn_relu_f32_emb", dict(kind="rnn", sizes=[6, 20], precision="f32", nonlinearity="relu",
                                  embedding=11, head=2, head_act="sigmoid"), 2, 7, "stream", None, {}),
        ("rnn_tanh_q8_emb", dict(kind="rnn", sizes=[6, 20], precision="q8", embedding=11, head=2,
                                 head_act="relu"), 2, 7, "stream", None, q8),
        ("gru_rb_q8_static", dict(kind="gru", sizes=[5, 33], precision="q8", reset_after=False,
                                  scales=(0.03, 0.009), head=4, head_act="tanh"), 2, 6, "stream", None, q8),
        ("gru_rb_f32", dict(kind="gru", sizes=[5, 33], precision="f32", reset_after=False), 2, 6,
         "stream", None, {}),
        ("lstm_q8_h1", dict(kind="lstm", sizes=[1, 1], precision="q8"), 1, 9, "stream", None, q8),
        ("gru_q8_run_lengths", dict(kind="gru", sizes=[7, 16], precision="q8"), 3, 6, "run", [6, 0, 3], q8),
        ("lstm_q8_bidir_run", dict(kind="lstm", sizes=[3, 8, 5], precision="q8", bidirectional=True,
                                   head=3, head_act="tanh"), 3, 5, "run", [5, 0, 2], q8),
        ("lstm_f32_bidir_run", dict(kind="lstm", sizes=[3, 8, 5], precision="f32", bidirectional=True,
                                    head=3, head_act="tanh"), 3, 5, "run", [5, 0, 2], {}),
        ("gru_f32_bidir_last", dict(kind="gru", sizes=[4, 6], precision="f32", bidirectional=True,
                                    head=2, last_step=True, last_bidir=True), 3, 4, "run", [4, 1, 0], {}),
        ("gru_q8_bidir_last", dict(kind="gru", sizes=[4, 6], precision="q8", bidirectional=True,
                                   head=2, last_step=True, last_bidir=True), 3, 4, "run", [4, 1, 0], q8),
        ("gru_rb_q8_bidir_run", dict(kind="gru", sizes=[4, 19], precision="q8", bidirectional=True,
                                     reset_after=False), 2, 5, "run", [3, 5], q8),
        ("rnn_q8_emb_last", dict(kind="rnn", sizes=[5, 12], precision="q8", embedding=9, last_step=True,
                                 head=3, head_act="softmax"), 3, 6, "run", [6, 2, 1], q8),
        ("rnn_f32_emb_last_nohead", dict(kind="rnn", sizes=[5, 12], precision="f32", embedding=9,
                                         last_step=True), 2, 4, "run", [3, 4], {}),
        # batches of >= 4 sequences: run() projects the inputs step by step (model.c)
        ("gru_q8_stream_b5", dict(kind="gru", sizes=[7, 16], precision="q8"), 5, 6, "stream", None, q8),
        ("lstm_f32_stream_b5", dict(kind="lstm", sizes=[4, 17, 9], precision="f32", head=3,
                                    head_act="softmax"), 5, 5, "stream", None, {}),
        ("lstm_q8_bidir_run_b6", dict(kind="lstm", sizes=[3, 8, 5], precision="q8", bidirectional=True,
                                      head=3, head_act="tanh"), 6, 5, "run", [5, 0, 2, 4, 1, 5], q8),
        ("gru_rb_f32_bidir_run_b4", dict(kind="gru", sizes=[4, 19], precision="f32", bidirectional=True,
                                         reset_after=False), 4, 5, "run", [3, 5, 0, 1], {}),
        ("rnn_q8_emb_last_b4", dict(kind="rnn", sizes=[5, 12], precision="q8", embedding=9, last_step=True,
                                    head=3, head_act="softmax"), 4, 6, "run", [6, 2, 1, 0], q8),
        # whole-sequence mode below batch 4 (one projection of all B*T inputs, >= 16 columns)
        ("gru_q8_run_b1", dict(kind="gru", sizes=[9, 40], precision="q8"), 1, 20, "run", None, q8),
        ("lstm_q8_run_b2_lengths", dict(kind="lstm", sizes=[6, 33, 17], precision="q8", head=2,
                                        head_act="sigmoid"), 2, 19, "run", [19, 11], q8),
        # batches of >= 16 rows: the fused AVX-512 VNNI batch step and the AMX path's tile products
        ("gru_q8_run_b17", dict(kind="gru", sizes=[7, 16], precision="q8"), 17, 4, "run",
         [4, 0, 3, 1, 2, 4, 4, 3, 2, 1, 0, 4, 3, 2, 1, 4, 2], q8),
        ("lstm_q8_stream_b16", dict(kind="lstm", sizes=[5, 20, 9], precision="q8", head=3,
                                    head_act="softmax"), 16, 3, "stream", None, q8),
        # the AMX path's cells from 128 hidden units on (rnc__layer_isa), tile edges past K = 70
        ("gru_q8_run_b17_wide", dict(kind="gru", sizes=[70, 128], precision="q8"), 17, 3, "run",
         [3, 1, 2, 3, 0, 3, 2, 1, 3, 3, 2, 1, 0, 3, 2, 1, 3], q8),
        ("lstm_q8_stream_b16_wide", dict(kind="lstm", sizes=[64, 128, 5], precision="q8", head=5,
                                         head_act="softmax"), 16, 2, "stream", None, q8),
        # cell options (the variant cell, kernels/cells_variant.c); format v2 only
        ("lstm_opts_q8_stream", dict(kind="lstm", sizes=[4, 17, 9], precision="q8", head=3, options=dict(
            peepholes=True, initial=True, clip=0.8,
            activations=[("hardsigmoid", 0.2, 0.5), ("softsign", 0, 0), ("tanh", 0, 0)])),
         2, 6, "stream", None, q8),
        ("lstm_opts_f32_b5", dict(kind="lstm", sizes=[4, 9], precision="f32", options=dict(
            input_forget=True, peepholes=True, initial=True)), 5, 5, "stream", None, {}),
        ("gru_rb_opts_q8_reverse", dict(kind="gru", sizes=[5, 19], precision="q8", reset_after=False,
                                        options=dict(reverse=True, clip=0.6, initial=True,
                                                     activations=[("sigmoid", 0, 0), ("leakyrelu", 0.1, 0)])),
         3, 6, "run", [6, 2, 0], q8),
        ("gru_opts_f32_bidir_elu", dict(
            kind="gru", sizes=[3, 8], precision="f32", bidirectional=True,
            options=dict(activations=[("hardsigmoid", 0.25, 0.45), ("elu", 0.7, 0)])),
         4, 5, "run", [5, 1, 3, 0], {}),
        ("rnn_opts_q8_scaledtanh_b5", dict(kind="rnn", sizes=[6, 12, 7], precision="q8", options=dict(
            activations=[("scaledtanh", 1.5, 0.7)], clip=2.0)), 5, 4, "stream", None, q8),
        ("lstm_proj_q8_stack_stream", dict(kind="lstm", sizes=[4, 11, 9], precision="q8", head=2,
                                           options=dict(proj=5, initial=True, peepholes=True)),
         3, 5, "stream", None, q8),
        ("lstm_proj_f32_bidir_run", dict(kind="lstm", sizes=[4, 11], precision="f32", bidirectional=True,
                                         options=dict(proj=3)), 3, 5, "run", [5, 0, 2], {}),
        ("lstm_go_backwards_q8_last", dict(kind="lstm", sizes=[4, 10], precision="q8", last_step=True, head=2,
                                           options=dict(reverse=True, reverse_output=True)),
         3, 5, "run", [5, 2, 1], q8),
        # the bounded state scale (state_scale="bounded"): batch 1 (b1 rows), 2-3 (small, multi),
        # 16+ (fused), both GRU forms, bidirectional, with a dynamic and a static first input
        ("gru_q8_bounded_b1", dict(kind="gru", sizes=[6, 24], precision="q8", head=3, head_act="tanh",
                                   bounded=True), 1, 12, "stream", None, q8),
        ("lstm_q8_bounded_stack_run", dict(kind="lstm", sizes=[5, 20, 9], precision="q8", head=2,
                                           head_act="softmax", bounded=True), 3, 9, "run", [9, 4, 0], q8),
        ("gru_rb_q8_bounded_bidir", dict(kind="gru", sizes=[4, 19], precision="q8", reset_after=False,
                                         bidirectional=True, bounded=True), 2, 5, "run", [3, 5], q8),
        ("rnn_q8_bounded_static_x_b17", dict(kind="rnn", sizes=[7, 16], precision="q8", scales=(0.03, 0.009),
                                             head=2, bounded=True), 17, 4, "run",
         [4, 0, 3, 1, 2, 4, 4, 3, 2, 1, 0, 4, 3, 2, 1, 4, 2], q8),
        ("gru_q8_bounded_stream_b2", dict(kind="gru", sizes=[7, 16, 16], precision="q8", bounded=True), 2, 6,
         "stream", None, q8),
        # q8 per-step records before the layers (docs/q8-contract.md); format v2 only
        ("gru_q8_front_stream", dict(kind="gru", sizes=[12, 16], precision="q8", head=2, front=True), 2, 6,
         "stream", None, q8),
        ("lstm_q8_front_run_b5", dict(kind="lstm", sizes=[12, 9], precision="q8", front=True), 5, 5, "run",
         [5, 0, 3, 1, 4], q8),
        # the same with 16 x 16 frame_convs (int16 weights and codes, exact int64 sums)
        ("gru_q8_front_q16_stream", dict(kind="gru", sizes=[12, 16], precision="q8", head=2, front="q16"),
         2, 6, "stream", None, q8),
        ("lstm_q8_front_q16_run_b5", dict(kind="lstm", sizes=[12, 9], precision="q8", front="q16"), 5, 5,
         "run", [5, 0, 3, 1, 4], q8),
        # q8 conv_time (its window in the stream state) and a residual block
        ("gru_q8_conv_time_stream", dict(kind="gru", sizes=[12, 16], precision="q8", head=2, front="conv"),
         2, 7, "stream", None, q8),
        ("lstm_q8_conv_time_run_b4", dict(kind="lstm", sizes=[12, 9], precision="q8", front="conv"),
         4, 6, "run", [6, 0, 3, 5], q8),
        # q8 with log_mel and pooling over time (float32 records before the int8 layers); last_step:
        # the case holds (B, out) (a strided run's T_out steps are not T); 13, 6, 2 -> 5, 2, 0 steps
        ("gru_q8_kws_last", dict(kind="gru", sizes=[12, 16], precision="q8", head=2, front="kws",
                                 last_step=True), 3, 13, "run", [13, 6, 2], q8),
        # q8 with padding over time (docs/q8-contract.md): rnc_run feeds each sequence's right pads
        # after its length; last_step: 14, 7, 1 -> 7, 4, 1 steps
        ("lstm_q8_timepad_last", dict(kind="lstm", sizes=[12, 10], precision="q8", head=3, front="timepad",
                                      last_step=True), 3, 14, "run", [14, 7, 1], q8),
        # the KWS log_mel (n_fft 512, 40 mels): every vector path of each ISA's FFT row, the q8
        # layers after it bit for bit the NumPy reference (rnncore.quant.front.log_mel_rows)
        ("gru_q8_kws512_stream", dict(kind="gru", sizes=[40, 16], precision="q8", head=3, front="kws512"),
         2, 5, "stream", None, q8),
        # q8 conv_time at strides 2, 2, 3 (causal; padded (2, 1); padded (1, 1), beyond P = 1): the
        # product only at the steps that complete a window at the stride; last_step (the case holds
        # (B, out)): 23, 11, 5, 3 -> 3, 2, 1, 1 steps
        ("gru_q8_strided_conv_last", dict(kind="gru", sizes=[12, 11], precision="q8", head=2, front="strided",
                                          last_step=True), 4, 23, "run", [23, 11, 5, 3], q8),
        # mul_halves records (f32 rows in a q8 file) before, between and after the layers: rnc_step,
        # and rnc_run of a bidirectional stack after last_step (halves [forward last | backward first])
        ("gru_q8_mul_halves_stream", dict(kind="gru", sizes=[6, 16, 10], precision="q8", head=3,
                                          front="mul"), 2, 6, "stream", None, q8),
        ("lstm_q8_mul_halves_bidir_last", dict(kind="lstm", sizes=[5, 8, 6], precision="q8",
                                               bidirectional=True, head=2, front="mul", last_step=True,
                                               last_bidir=True), 3, 5, "run", [5, 1, 3], q8),
        # q8 residuals around recurrent layers (docs/rnc-format.md, "residual"): the layer's float
        # input added to its output, and a span reaching back over the layer into the front-end
        ("gru_q8_resid_rnn_stream", dict(kind="gru", sizes=[12, 12, 12], precision="q8", head=2, front=True,
                                         resid=True), 2, 6, "stream", None, q8),
        ("lstm_q8_resid_rnn_run_b4", dict(kind="lstm", sizes=[12, 12], precision="q8", front=True,
                                          resid=True), 4, 6, "run", [6, 0, 3, 5], q8),
    ]
    names = []
    for name, kw, batch, steps, mode, lengths, tol in cases:
        spec = make_spec(rng, **kw)
        write_case(out, name, spec, batch, steps, mode, rng, lengths, **tol)
        names.append(name)
    # fully-integer models (precision 3): bit for bit rnncore.quant.integer (tolerance 0)
    int_cases = [
        ("int_gru_lstm_head_stream", ["gru", "lstm"], [5, 12, 9], 3, False, "gemmlowp", 2, 6, "stream", None),
        ("int_grurb_relu_run", ["gru_rb", "rnn_relu"], [4, 10, 7], 0, False, "table", 3, 7, "run", [7, 2, 0]),
        ("int_tanh_last_head_run", ["rnn_tanh"], [6, 16], 4, True, "table", 3, 5, "run", [5, 1, 3]),
        ("int_lstm_b5_stream", ["lstm"], [3, 17], 0, False, "gemmlowp", 5, 4, "stream", None),
    ]
    for name, kinds, sizes, head, last_step, act, batch, steps, mode, lengths in int_cases:
        write_int_case(out, name, kinds, sizes, head, last_step, act, batch, steps, mode, rng, lengths)
        names.append(name)
    (out / "cases.txt").write_text("\n".join(names) + "\n")
    # a ReLU RNN whose state overflows float32 (test_nonfinite in test_main.c): I = 1, H = 2,
    # h_t = relu(x_t + W_hh h_{t-1}), W_hh = 1e30 [[1, 1], [1, -1]]; from x = 1: (1, 1), (2e30, 1),
    # then (inf, inf) at step 2
    for precision in ("f32", "q8"):
        spec = make_spec(np.random.default_rng(0), "rnn", [1, 2], precision, nonlinearity="relu")
        w = spec["layers"][0]["weights"]
        w["weight_ih"][...] = 1.0
        w["weight_hh"][...] = np.array([[1e30, 1e30], [1e30, -1e30]], F32)
        w["bias_ih"][...] = 0.0
        w["bias_hh"][...] = 0.0
        (out / f"relu_overflow_{precision}.rnc").write_bytes(write_rnc(spec, version=2))
    write_flush_models(out)


def _flush_models() -> dict:
    """The padded models of test_flush in test_main.c (f32; docs/c-api.md, "Look-ahead"): rc.nn
    modules, so that the expected outputs are the NumPy layers' (float64). "flush_conv": a Conv1d
    padded (2, 2) at k = 3 (beyond its reach P = 2: its pad steps alone would make outputs), ReLU, an
    unpadded MaxPool1d(4, stride 2) and a Conv1d(k=2, padding=1), which an input of 1 step leaves
    without input; "flush_pool": AvgPool1d(3, 2, padding 1), a MaxPool1d(3, 1) padded (2, 2) (as an
    ONNX MaxPool may be) and AvgPool1d(2, 2, ceil_mode=True); each then a GRU (and a head)."""
    import rnncore as rc

    nn = rc.nn
    wide = nn.MaxPool1d(3, channels=3, stride=1)
    wide.pad_left, wide.pad_right = 2, 2   # rc.nn's PyTorch check stops at k // 2; ONNX pads reach P
    return {
        "flush_conv": nn.Sequential(nn.Conv1d(3, 4, 3, padding=2, seed=1), nn.ReLU(),
                                    nn.MaxPool1d(4, channels=4, stride=2),
                                    nn.Conv1d(4, 4, 2, padding=1, seed=2),
                                    nn.GRU(4, 5, seed=3), nn.Linear(5, 2, seed=4)),
        "flush_pool": nn.Sequential(nn.AvgPool1d(3, channels=3, stride=2, padding=1), wide,
                                    nn.AvgPool1d(2, channels=3, stride=2, ceil_mode=True),
                                    nn.GRU(3, 5, seed=5)),
    }


def write_flush_models(out: Path, batch: int = 4, steps: int = 9, lengths=(9, 1, 0, 6)) -> None:
    """``<name>.rnc`` and ``<name>.flush``, little-endian: u32 B, T, in_w, out_w, T_out (the most
    outputs of a row); i32 lengths (B); u32 n_out (B), each row's output steps (its sequence alone
    through the NumPy model; 0 where the NumPy layers refuse a sequence shorter than a window, as
    PyTorch does, or an empty one); x (B, T, in_w) f32; y (B, T_out, out_w) f32, zeros past n_out."""
    from rnncore.spec import build_rnc

    rng = np.random.default_rng(20261206)
    for name, model in _flush_models().items():
        data, _ = build_rnc(model, "f32")
        (out / f"{name}.rnc").write_bytes(data)
        in_w = next(iter(model._modules.values())).channels
        x = rng.standard_normal((batch, steps, in_w)).astype(F32)
        ys = []
        for b, n in enumerate(lengths):
            try:
                ys.append(np.asarray(model.forward(x[b:b + 1, :n].astype(np.float64)), F32)[0])
            except ValueError:   # fewer steps than a window somewhere in the chain: no output
                ys.append(None)
        out_w = next(y.shape[1] for y in ys if y is not None)
        n_out = [0 if y is None else y.shape[0] for y in ys]
        y = np.zeros((batch, max(n_out), out_w), F32)
        for b, yb in enumerate(ys):
            if yb is not None:
                y[b, :yb.shape[0]] = yb
        blob = struct.pack("<5I", batch, steps, in_w, out_w, max(n_out))
        blob += np.asarray(lengths, np.int32).tobytes() + np.asarray(n_out, np.uint32).tobytes()
        blob += x.tobytes() + y.tobytes()
        (out / f"{name}.flush").write_bytes(blob)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/vectors")
