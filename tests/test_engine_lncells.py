"""Layer-normalised LSTM/GRU in the C engine (issue 16): rc.compile of rnncore.nn.lncells' layers.

* f32: within 1e-5 of the NumPy float model (float64) and of the PyTorch reference module of
  tests/test_lncells.py (written from the equations with torch.nn.functional.layer_norm);
* q8: bit for bit the quantised NumPy reference (rnncore/quant/reference.py, ``layer_norm_c``)
  with the C core's tanh and sigmoid substituted (csrc/tests/gen_vectors.py);
* stream = run (f32 1e-6, q8 bit for bit), state save/restore, .rnc round trips, refusals of
  malformed layer-norm records by the C loader and the Python reader with the same line, export-c.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from rnc_mutations import fix_crc
from test_lncells import TorchLNRecurrent

import rnncore as rc
from rnncore import _engine
from rnncore.io.rnc import LAYOUT, RncFormatError, check_rnc, read_rnc, write_rnc
from rnncore.nn import Embedding, LastStep, Linear, Sequential
from rnncore.nn.lncells import LayerNormGRU, LayerNormLSTM
from rnncore.quant import reference as R
from rnncore.spec import spec_from_model, spec_from_rnc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "csrc" / "tests"))
import gen_vectors  # noqa: E402

F32 = np.float32


def _model(cls, I, H, seed, dtype="float64", **kw):
    g = np.random.default_rng(seed)
    m = cls(I, H, dtype=dtype, seed=seed, **kw)
    for k, v in m.params.items():   # gains and shifts away from 1 and 0
        if k.startswith("ln_"):
            v[...] = g.uniform(0.5, 1.5, v.shape) if k.endswith("weight") else g.uniform(-0.5, 0.5, v.shape)
        else:
            v[...] *= 2.0
    return m


CASES = {
    "lstm": (LayerNormLSTM, {}),
    "lstm_joint": (LayerNormLSTM, {"per_gate": False}),
    "lstm_proj": (LayerNormLSTM, {"proj_size": 5}),
    "lstm_joint_proj_eps": (LayerNormLSTM, {"per_gate": False, "proj_size": 3, "eps": 1e-3}),
    "gru": (LayerNormGRU, {}),
    "gru_joint": (LayerNormGRU, {"per_gate": False}),
}


def _state(m, B, g):
    P = m.output_size
    h0 = g.standard_normal((1, B, P)) * 0.5
    if isinstance(m, LayerNormLSTM):
        return h0, g.standard_normal((1, B, m.hidden_size)) * 0.5
    return h0


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("isa", ["auto", "generic"])
def test_f32_matches_numpy_and_torch_and_q8_is_bit_exact(name, isa):
    cls, kw = CASES[name]
    m = _model(cls, 7, 19, seed=3, **kw)   # H = 19: a padded gate block (Hp = 32), a lane tail
    lstm = cls is LayerNormLSTM
    g = np.random.default_rng(4)
    x = g.standard_normal((5, 12, 7))
    lengths = np.array([12, 5, 1, 9, 12])
    state = _state(m, 5, g)
    y64, fin64 = m.forward(x, state=state, lengths=lengths)
    ref = TorchLNRecurrent("lstm" if lstm else "gru", m.state_dict(), m.per_gate, m.eps).double()
    with torch.no_grad():
        yt, ht, ct = ref(torch.tensor(x), torch.tensor(state[0][0] if lstm else state[0]),
                         torch.tensor(state[1][0]) if lstm else None, lengths)
    np.testing.assert_allclose(y64, yt.numpy(), rtol=0, atol=1e-12)   # the two references agree

    xf = x.astype(F32)
    st32 = tuple(a.astype(F32) for a in state) if lstm else state.astype(F32)
    eng = rc.compile(m, precision="f32")
    if isa != "auto":
        eng.set_isa(isa)
    y, fin = eng.run(xf, lengths=lengths, state=st32, return_state=True)
    np.testing.assert_allclose(y, y64, rtol=0, atol=1e-5)
    np.testing.assert_allclose(y, yt.numpy(), rtol=0, atol=1e-5)
    if lstm:
        np.testing.assert_allclose(fin[0], fin64[0], rtol=0, atol=1e-5)
        np.testing.assert_allclose(fin[1], fin64[1], rtol=0, atol=1e-5)
        np.testing.assert_allclose(fin[1][0], ct.numpy(), rtol=0, atol=1e-5)
    else:
        np.testing.assert_allclose(fin, fin64, rtol=0, atol=1e-5)
        np.testing.assert_allclose(fin[0], ht.numpy(), rtol=0, atol=1e-5)

    q = rc.compile(m, precision="q8")
    if isa != "auto":
        q.set_isa(isa)
    yq, finq = q.run(xf, lengths=lengths, state=st32, return_state=True)
    qm = R.qmodel_from_rnc(read_rnc(q.data))
    want, wfin = gen_vectors.q8_reference_forward(qm, xf, lengths, st32)
    np.testing.assert_array_equal(yq, want)
    if lstm:
        np.testing.assert_array_equal(finq[0][0], wfin[0][0])
        np.testing.assert_array_equal(finq[1][0], wfin[0][1])
    else:
        np.testing.assert_array_equal(finq[0], wfin[0])
    assert np.abs(yq - y64).max() < 0.1                                # and q8 is still the model


def test_the_float_reference_of_the_spec_is_the_layer():
    """R.float_forward of the compiled spec (the q8 reference's loops in float64) = the layer."""
    for cls, kw in CASES.values():
        m = _model(cls, 4, 9, seed=5, **kw)
        x = np.random.default_rng(6).standard_normal((3, 6, 4))
        lengths = np.array([6, 2, 4])
        y, _ = m.forward(x, lengths=lengths)
        y_ref, _ = R.float_forward(spec_from_model(m), x, lengths)
        np.testing.assert_allclose(y_ref, y, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls", [LayerNormGRU, LayerNormLSTM])
def test_sequential_with_embedding_last_step_and_linear(cls):
    m = Sequential(Embedding(20, 6, seed=1), _model(cls, 6, 10, seed=2), LastStep(), Linear(10, 3, seed=3))
    g = np.random.default_rng(7)
    ids = g.integers(0, 20, (4, 8))
    lengths = np.array([8, 3, 6, 1])
    y64 = m.forward(ids, lengths=lengths)
    y64 = y64[0] if isinstance(y64, tuple) else y64
    y = rc.compile(m, precision="f32").run(ids.astype(np.int32), lengths=lengths)
    np.testing.assert_allclose(y, y64, rtol=0, atol=1e-5)
    q = rc.compile(m, precision="q8")
    want, _ = gen_vectors.q8_reference_forward(R.qmodel_from_rnc(read_rnc(q.data)), ids, lengths)
    np.testing.assert_array_equal(q.run(ids.astype(np.int32), lengths=lengths), want)


@pytest.mark.parametrize("name", ["lstm_joint_proj_eps", "gru"])
@pytest.mark.parametrize("prec", ["f32", "q8"])
def test_streaming_equals_run_and_state_restores(name, prec):
    cls, kw = CASES[name]
    m = _model(cls, 3, 11, seed=8, **kw)
    x = np.random.default_rng(9).standard_normal((2, 9, 3)).astype(F32)
    eng = rc.compile(m, precision=prec)
    whole = eng.run(x)
    s = eng.stream(batch=2)
    steps = np.stack([s.step(x[:, t]).copy() for t in range(9)], 1)
    if prec == "q8":
        np.testing.assert_array_equal(steps, whole)
    else:
        np.testing.assert_allclose(steps, whole, rtol=1e-6, atol=1e-6)
    s.reset()
    for t in range(4):
        s.step(x[:, t])
    saved = s.state
    tail1 = np.stack([s.step(x[:, t]).copy() for t in range(4, 9)])
    s.state = saved
    tail2 = np.stack([s.step(x[:, t]).copy() for t in range(4, 9)])
    np.testing.assert_array_equal(tail1, tail2)
    np.testing.assert_array_equal(tail1, np.stack([steps[:, t] for t in range(4, 9)]))


@pytest.mark.parametrize("name", list(CASES))
def test_layer_norm_survives_the_rnc_round_trip(name, tmp_path):
    cls, kw = CASES[name]
    m = _model(cls, 3, 6, seed=10, **kw)
    for prec in ("f32", "q8"):
        eng = rc.compile(m, precision=prec)
        d = read_rnc(eng.data)
        ln = d["layers"][0]["options"]["layer_norm"]
        assert ln["per_gate"] == m.per_gate and ln["eps"] == float(F32(m.eps))
        for key in ("ih", "hh") + (("c",) if cls is LayerNormLSTM else ()):
            want = np.stack([m.params[f"ln_{key}_weight"], m.params[f"ln_{key}_bias"]])[None].astype(F32)
            np.testing.assert_array_equal(ln[key], want)
        if cls is LayerNormGRU:
            assert ln["c"] is None
        for w in ("bias_ih", "bias_hh"):
            assert not d["layers"][0]["weights"][w].any()
        p = tmp_path / f"{name}_{prec}.rnc"
        rc.save(eng, p)
        assert rc.load(p).data == eng.data
    # f32: the file's own float model is the layer (the dequantised q8 one is not, exactly)
    assert write_rnc(spec_from_rnc(read_rnc(rc.compile(m).data)), precision="f32") == rc.compile(m).data


def test_the_writer_refuses_what_layer_norm_does_not_combine_with():
    spec = spec_from_model(_model(LayerNormLSTM, 3, 4, seed=11))
    o = spec.layers[0].options
    for extra, msg in (({"clip": 1.0}, "clip"), ({"input_forget": True}, "input_forget"),
                       ({"peepholes": np.zeros((1, 3, 4))}, "peepholes")):
        spec.layers[0].options = {**o, **extra}
        with pytest.raises(ValueError, match=f"layer_norm does not combine with {msg}"):
            write_rnc(spec, precision="f32")
    spec.layers[0].options = {**o, "layer_norm": {**o["layer_norm"], "eps": 0.0}}
    with pytest.raises(ValueError, match="eps must be a positive finite number"):
        write_rnc(spec, precision="f32")
    spec.layers[0].options = {**o, "layer_norm": {**o["layer_norm"], "c": None}}
    want = "options['layer_norm']['c']: expected shape (1, 2, 4), got None"
    with pytest.raises(ValueError, match=re.escape(want)):
        spec.validate()


def _both_refuse(b: bytes, want: str) -> None:
    with pytest.raises(RncFormatError, match=re.escape(want)):
        check_rnc(b)
    with pytest.raises(ValueError, match=re.escape(want)):
        _engine.Model(b)


def test_malformed_layer_norm_records_are_refused_with_the_same_line():
    m = _model(LayerNormGRU, 3, 4, seed=12)
    data = rc.compile(m, precision="f32").data
    rec = 64                                          # the recurrent record after the v2 header
    opt = rec + 48 + 48                               # its cellopt (one direction)
    ln = opt + LAYOUT["cellopt"].size                 # the cellln
    part = "record 0 (recurrent, layer 0): "
    size = struct.unpack_from("<I", data, rec + 4)[0]
    assert size == 48 + 48 + 128 + 32

    def edit(at, fmt, v):
        b = bytearray(data)
        struct.pack_into(fmt, b, at, v)
        return fix_crc(b)

    flags = struct.unpack_from("<I", data, opt)[0]
    _both_refuse(edit(opt, "<I", flags & ~0x80), f"{part}size: {size}, expected {size - 32}")
    _both_refuse(edit(ln + 4, "<f", 0.0), f"{part}ln.eps: bits 0x0: expected a finite value > 0")
    _both_refuse(edit(ln + 4, "<I", 0x7FC00000),
                 f"{part}ln.eps: bits 0x7fc00000: expected a finite value > 0")
    _both_refuse(edit(ln, "<I", 2), f"{part}ln.flags: 0x2 has unknown bits (known: 0x1)")
    _both_refuse(edit(ln + 12, "<I", 4 * 2 * 12 - 4), f"{part}ln.ln_ih: tensor of 92 bytes, expected 96")
    _both_refuse(edit(ln + 28, "<I", 96),                           # ln_c on a GRU
                 f"{part}ln.ln_c: tensor (offset 0, 96 bytes) where none belongs (expected 0, 0)")
    ih_at = struct.unpack_from("<I", data, ln + 8)[0]
    _both_refuse(edit(ih_at, "<f", float("inf")), f"{part}ln.ln_ih: value 0 is NaN or Inf")
    rflags = struct.unpack_from("<I", data, rec + 12)[0]
    _both_refuse(edit(rec + 12, "<I", rflags & ~1),
                 f"{part}opt.flags: 0x{flags:x}: layer_norm (0x80) does not combine with GRU reset_after = 0")
    b = bytearray(edit(opt, "<I", flags | 4))                        # the clip flag with a clip value
    struct.pack_into("<f", b, opt + 4, 1.0)
    _both_refuse(fix_crc(b),
                 f"{part}opt.flags: 0x{flags | 4:x}: layer_norm (0x80) does not combine with clip")


def test_export_c_runs_a_layer_norm_model(tmp_path):
    """export-c: the exported program (the library built by csrc/Makefile) prints the engine's
    step outputs."""
    from export_c_run import exported_outputs

    eng = rc.compile(_model(LayerNormLSTM, 3, 6, seed=13, proj_size=4), precision="q8")
    x = np.random.default_rng(14).standard_normal((1, 6, 3)).astype(F32)
    got = exported_outputs(tmp_path, eng.data, x[0])["step"]
    np.testing.assert_allclose(got, eng.run(x)[0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", [LayerNormGRU, LayerNormLSTM])
def test_q8_static_scales_are_bit_exact(cls):
    m = _model(cls, 3, 8, seed=15)
    g = np.random.default_rng(16)
    eng = rc.compile(m, precision="q8", calibration=g.standard_normal((16, 10, 3)))
    d = read_rnc(eng.data)
    assert d["layers"][0]["x_scale"] is not None and d["layers"][0]["h_scale"][0] is not None
    x = g.standard_normal((3, 9, 3)).astype(F32)
    lengths = np.array([9, 5, 2])
    want, _ = gen_vectors.q8_reference_forward(R.qmodel_from_rnc(d), x, lengths)
    np.testing.assert_array_equal(eng.run(x, lengths=lengths), want)


@pytest.mark.parametrize("kind,options", [("gru", {"per_gate": False}), ("lstm", {})])
def test_bidirectional_and_reverse_layer_norm_specs(kind, options):
    """The format holds D blocks of gains and shifts: a bidirectional stack and a reverse layer
    (hand-built specs; rnncore.nn's layers are one direction) against the references."""
    g = np.random.default_rng(17)
    for bidir, extra in ((True, {}), (False, {"reverse": True})):
        d = gen_vectors.make_spec(g, kind=kind, sizes=[3, 6, 5], precision="f32", bidirectional=bidir,
                                  options=dict(layer_norm=options, **extra))
        for layer in d["layers"]:
            for k in layer["weights"]:
                if k.startswith("bias"):
                    layer["weights"][k][:] = 0
        data = write_rnc(d)
        x = g.standard_normal((3, 7, 3)).astype(F32)
        lengths = np.array([7, 2, 5])
        spec = spec_from_rnc(read_rnc(data))
        y64, _ = R.float_forward(spec, x.astype(np.float64), lengths)
        np.testing.assert_allclose(rc.load(data).run(x, lengths=lengths), y64, rtol=0, atol=1e-5)
        q = rc.compile(spec, precision="q8")
        want, _ = gen_vectors.q8_reference_forward(R.qmodel_from_rnc(read_rnc(q.data)), x, lengths)
        np.testing.assert_array_equal(q.run(x, lengths=lengths), want)


def test_to_onnx_refuses_layer_norm_instead_of_dropping_it(tmp_path):
    from rnncore.io.onnx_export import to_onnx

    m = _model(LayerNormGRU, 3, 4, seed=18)
    for model in (m, Sequential(m, Linear(4, 2, seed=1)), rc.compile(m)):
        with pytest.raises(ValueError, match="layer 0 is a layer-normalised GRU .* does not export"):
            to_onnx(model, tmp_path / "m.onnx")


def test_rnncore_info_names_the_layer_norm_and_counts_its_parameters(tmp_path):
    m = _model(LayerNormGRU, 3, 8, seed=19, per_gate=False)
    p = tmp_path / "m.rnc"
    rc.save(rc.compile(m, precision="q8"), p)
    r = subprocess.run([sys.executable, "-m", "rnncore", "info", str(p)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    n = sum(v.size for v in m.params.values()) + 2 * 24   # + the zero biases b_ih, b_hh (3H each)
    want = f"layer 0: gru 3 -> 8, reset_after, layer norm (joint), dynamic activation scales, {n} parameters"
    assert want in r.stdout, r.stdout
