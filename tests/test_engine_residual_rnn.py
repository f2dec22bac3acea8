"""A residual around a recurrent layer, ``y = x + GRU(x)`` (issue 16): ``rnncore.nn.Residual``
with a recurrent ``f`` (GRU / LSTM / RNN, uni- or bidirectional, or a Sequential of per-step layers
and one recurrent layer, DeepFilterNet's ``x + linear_out(gru(linear_in(x)))``). The NumPy
reference against PyTorch run sequence by sequence (an independent reference, lengths included),
its backward against finite differences in float64 (input, parameters and the initial state),
streaming chunk by chunk against the whole run, and the refusals by name."""

import numpy as np
import pytest

import rnncore as rc
from rnncore.gradcheck import check_module

torch = pytest.importorskip("torch")
nn = rc.nn


def _x(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _bodies(dtype="float64"):
    """(name, rnncore f, a torch module computing f's output from x (B, T, F))."""
    out = []
    g = nn.GRU(6, 6, dtype=dtype, seed=1)
    out.append(("gru", g, lambda t: t))
    l2 = nn.LSTM(6, 3, bidirectional=True, dtype=dtype, seed=2)
    out.append(("lstm_bidir", l2, lambda t: t))
    r = nn.RNN(6, 6, nonlinearity="relu", dtype=dtype, seed=3)
    out.append(("rnn_relu", r, lambda t: t))
    seq = nn.Sequential(nn.Linear(6, 4, dtype=dtype, seed=4), nn.GRU(4, 5, dtype=dtype, seed=5), nn.Tanh(),
                        nn.Linear(5, 6, dtype=dtype, seed=6))
    out.append(("lin_gru_lin", seq, lambda t: t))
    return out


def _load(t, m):
    t.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in m.state_dict().items()})
    return t


def _torch_rec(m):
    kind = type(m).__name__
    kw = {"bidirectional": m.bidirectional, "batch_first": True}
    if kind == "RNN":
        kw["nonlinearity"] = m.nonlinearity
    return _load(getattr(torch.nn, kind)(m.input_size, m.hidden_size, **kw).double(), m)


def _torch_f(fn):
    """A torch function computing ``f(x)`` for one sequence (1, T, F) with the same weights."""
    if getattr(fn, "is_recurrent", False):
        t = _torch_rec(fn)
        return lambda x: t(x)[0]
    mods = []
    for m in fn:
        if getattr(m, "is_recurrent", False):
            t = _torch_rec(m)
            mods.append(lambda x, t=t: t(x)[0])
        elif type(m).__name__ == "Linear":
            mods.append(_load(torch.nn.Linear(m.in_features, m.out_features).double(), m))
        elif type(m).__name__ == "Tanh":
            mods.append(torch.tanh)
        else:
            raise AssertionError(type(m).__name__)

    def f(x):
        for m in mods:
            x = m(x)
        return x
    return f


@pytest.mark.parametrize("name", [b[0] for b in _bodies()])
def test_numpy_forward_against_torch_with_lengths(name):
    fn = dict((b[0], b[1]) for b in _bodies())[name]
    res = nn.Residual(fn)
    f = _torch_f(fn)
    x = _x((3, 7, 6), seed=1)
    lengths = np.array([7, 4, 1])
    y, _ = res.forward(x, lengths=lengths)
    with torch.no_grad():
        for b in range(3):
            n = lengths[b]
            xb = torch.from_numpy(x[b:b + 1, :n])
            want = (xb + f(xb)).numpy()[0]
            np.testing.assert_allclose(y[b, :n], want, atol=1e-12, rtol=0)
            assert not y[b, n:].any()                       # zeros past the length
        want_full = (torch.from_numpy(x) + f(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(res.forward(x)[0], want_full, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", [b[0] for b in _bodies()])
def test_gradcheck_float64(name):
    fn = dict((b[0], b[1]) for b in _bodies())[name]
    res = nn.Residual(fn)
    x = _x((2, 5, 6), seed=2)
    rep = check_module(res, x, lengths=np.array([5, 3]))
    assert rep.ok, str(rep)
    state = res.zero_state(2)
    state = tuple(_x(s.shape, seed=3 + i) for i, s in enumerate(state)) if isinstance(state, tuple) else \
        _x(state.shape, seed=3)
    rep = check_module(res, x, state=state)
    assert rep.ok, str(rep)
    assert "input" in rep.errors and any(n.startswith("state") for n in rep.errors), rep.errors
    assert any(n.startswith("fn.") for n in rep.errors), rep.errors


def test_backward_is_dy_plus_f_dx():
    g = nn.GRU(4, 4, dtype="float64", seed=7)
    res = nn.Residual(g)
    x = _x((2, 3, 4), seed=4)
    dy = _x((2, 3, 4), seed=5)
    res.forward(x, train=True)
    dx, ds = res.backward(dy)
    g2 = nn.GRU(4, 4, dtype="float64", seed=7)
    g2.forward(x, train=True)
    dfx, ds2 = g2.backward(dy)
    np.testing.assert_array_equal(dx, dy + dfx)
    np.testing.assert_array_equal(ds, ds2)


def test_in_sequential_final_states_and_stream():
    model = nn.Sequential(nn.Linear(5, 6, seed=1), nn.Residual(nn.GRU(6, 6, seed=2)),
                          nn.Residual(nn.Sequential(nn.Linear(6, 4, seed=3), nn.LSTM(4, 6, seed=4))),
                          nn.Linear(6, 2, seed=5))
    assert len(model.recurrent_modules) == 2
    x = _x((2, 9, 5), seed=6, dtype=np.float32)
    whole = model.forward(x)
    h_gru, (h_lstm, c_lstm) = model.final_states
    assert h_gru.shape == (1, 2, 6) and h_lstm.shape == (1, 2, 6) and c_lstm.shape == (1, 2, 6)
    state, parts = None, []
    for a, b in ((0, 1), (1, 1), (1, 5), (5, 9)):        # a zero-step chunk included
        y, state = model.stream(x[:, a:b], state)
        parts.append(y)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, atol=1e-6, rtol=0)
    np.testing.assert_allclose(state[1], h_gru, atol=1e-6, rtol=0)
    # the final states carried into the next call continue the sequences
    model.forward(x[:, :4])
    y2 = model.forward(x[:, 4:], state=model.final_states)
    np.testing.assert_allclose(y2, whole[:, 4:], atol=1e-6, rtol=0)


def test_bidirectional_does_not_stream():
    model = nn.Sequential(nn.Residual(nn.GRU(4, 2, bidirectional=True)))
    with pytest.raises(TypeError, match="bidirectional"):
        model.stream_state(1)


def test_refusals_name_sizes():
    with pytest.raises(ValueError, match="takes 4 features and gives 5"):
        nn.Residual(nn.GRU(4, 5))
    with pytest.raises(ValueError, match=r"takes 4 features and gives 6 \(2 directions x 3\)"):
        nn.Residual(nn.LSTM(4, 3, bidirectional=True))
    res = nn.Residual(nn.Sequential(nn.Linear(4, 3), nn.GRU(3, 5)))
    with pytest.raises(ValueError, match="gives 5 features per step, x has 4"):
        res.forward(_x((1, 2, 4), dtype=np.float32))
    with pytest.raises(TypeError, match="at most one recurrent module, got 2"):
        nn.Residual(nn.Sequential(nn.GRU(4, 4), nn.GRU(4, 4)))
    with pytest.raises(TypeError, match=r"fn\[1\]: expected per-step layers .* got LastStep"):
        nn.Residual(nn.Sequential(nn.GRU(4, 4), nn.LastStep()))


# -- the C engine --------------------------------------------------------------------------------
def _models(dtype="float32"):
    """rc.nn models with residuals around recurrent layers, as compile writes them."""
    kw = {"dtype": dtype}
    return {
        # y = x + GRU(x), then a head
        "gru": nn.Sequential(nn.Residual(nn.GRU(6, 6, seed=1, **kw)), nn.Linear(6, 3, seed=2, **kw)),
        # DeepFilterNet: x + linear_out(tanh(gru(linear_in(x)))), after a front-end Linear
        "dfn": nn.Sequential(nn.Linear(5, 6, seed=3, **kw), nn.Residual(nn.Sequential(
            nn.Linear(6, 4, seed=4, **kw), nn.GRU(4, 5, seed=5, **kw), nn.Tanh(),
            nn.Linear(5, 6, seed=6, **kw))), nn.Linear(6, 2, seed=7, **kw)),
        # GNMT: stacked residual LSTMs (the second residual between two layers' records)
        "gnmt": nn.Sequential(nn.LSTM(5, 6, seed=8, **kw), nn.Residual(nn.LSTM(6, 6, seed=9, **kw)),
                              nn.Residual(nn.LSTM(6, 6, seed=10, **kw)), nn.ReLU(),
                              nn.Linear(6, 3, seed=11, **kw)),
        # a residual around a GRU whose output feeds the next layer, no head
        "mid": nn.Sequential(nn.Residual(nn.GRU(4, 4, seed=12, **kw)), nn.GRU(4, 3, seed=13, **kw)),
    }


def _bidir(dtype="float32"):
    return nn.Sequential(nn.GRU(5, 6, seed=14, dtype=dtype),
                         nn.Residual(nn.LSTM(6, 3, bidirectional=True, seed=15, dtype=dtype)),
                         nn.Linear(6, 2, seed=16, dtype=dtype))


def _inputs(m, seed=0, B=3, T=9):
    """Inputs ``(B, T, F)`` for model ``m`` and lengths ``(B,)`` (T, 5, 1)."""
    first = next(iter(m))
    width = first.in_features if hasattr(first, "in_features") else (
        first.input_size if hasattr(first, "input_size") else first.recurrent.input_size)
    return _x((B, T, width), seed=seed, dtype=np.float32), np.array([T, 5, 1][:B])


@pytest.mark.parametrize("name", ["gru", "dfn", "gnmt", "mid", "bidir"])
def test_f32_engine_equals_numpy_model_with_lengths(name):
    m = _bidir() if name == "bidir" else _models()[name]
    e = rc.compile(m, "f32")
    X, lengths = _inputs(m, seed=20)
    for L in (None, lengths):
        np.testing.assert_allclose(e.run(X, L), m.forward(X, lengths=L), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["gru", "dfn", "gnmt", "mid"])
def test_f32_engine_against_torch(name):
    """The compiled model against PyTorch (float64) on the same weights, sequence by sequence."""
    m64 = _models("float64")[name]
    m32 = _models()[name]
    e = rc.compile(m32, "f32")
    X, lengths = _inputs(m32, seed=21)
    y = e.run(X, lengths)
    mods = []
    for mod in m64:
        if type(mod).__name__ == "Residual":
            f = _torch_f(mod.fn)
            mods.append(lambda t, f=f: t + f(t))
        elif getattr(mod, "is_recurrent", False):
            t_ = _torch_rec(mod)
            mods.append(lambda t, t_=t_: t_(t)[0])
        elif type(mod).__name__ == "Linear":
            mods.append(_load(torch.nn.Linear(mod.in_features, mod.out_features).double(), mod))
        else:
            mods.append(torch.relu)
    with torch.no_grad():
        for b, n in enumerate(lengths):
            t = torch.from_numpy(X[b:b + 1, :n].astype(np.float64))
            for f in mods:
                t = f(t)
            np.testing.assert_allclose(y[b, :n], t.numpy()[0], atol=1e-5, rtol=0)
            assert not y[b, n:].any()


@pytest.mark.parametrize("name", ["gru", "dfn", "gnmt", "mid", "bidir"])
def test_q8_bit_for_bit_with_the_numpy_q8_spec_on_every_isa(name):
    from _helpers import c_equals_q8_reference

    m = _bidir() if name == "bidir" else _models()[name]
    X, lengths = _inputs(m, seed=22)
    for cal in (None, _x((20, 9, X.shape[2]), seed=24, dtype=np.float32)):   # dynamic, static scales
        e = rc.compile(m, "q8", calibration=cal)
        ref = c_equals_q8_reference(e, X, lengths)
        assert np.abs(ref - m.forward(X, lengths=lengths)).max() < 0.1 * max(1.0, np.abs(ref).max())
        c_equals_q8_reference(e, X)


@pytest.mark.parametrize("precision", ["f32", "q8"])
@pytest.mark.parametrize("name", ["gru", "dfn", "gnmt", "mid"])
def test_stream_equals_run_and_restores(name, precision):
    from _helpers import assert_stream_restores

    m = _models()[name]
    e = rc.compile(m, precision)
    X, _ = _inputs(m, seed=23, B=2)
    assert_stream_restores(e, X, e.run(X), split=4, err_msg=name)


def test_a_residual_alone_compiles_with_its_add():
    m = nn.Residual(nn.GRU(4, 4, seed=31, dtype="float32"))
    e = rc.compile(m, "f32")
    assert e.describe() == "gru(4) > residual"
    X = _x((2, 6, 4), seed=32, dtype=np.float32)
    np.testing.assert_allclose(e.run(X), m.forward(X)[0], atol=1e-6, rtol=0)


def test_describe_and_read_back():
    from rnncore.io.rnc import read_rnc, write_rnc

    e = rc.compile(_models()["dfn"], "q8")
    d = read_rnc(e.data)
    assert d["post"][-1] == {"kind": "residual", "features": 6, "span": 4}
    assert write_rnc(d) == e.data
    assert "residual" in e.describe()


def _edit(data: bytes, record: int, at: int, value: int) -> bytes:
    """data with the u32 at byte `at` of record `record` set, the checksum fixed."""
    import struct

    from rnc_mutations import fix_crc

    b = bytearray(data)
    pos = 64
    for _ in range(record):
        pos += struct.unpack_from("<I", b, pos + 4)[0]
    struct.pack_into("<I", b, pos + at, value)
    return fix_crc(b)


@pytest.mark.parametrize("at, value, want", [
    (12, 2, "record 1 (residual): span: 2, expected 1..1 (the per-step and recurrent records right before "
            "this one)"),
    (12, 0, "record 1 (residual): span: 0, expected 1..1"),
    (8, 5, "record 1 (residual): features: 5, expected 6"),
])
def test_loaders_refuse_a_bad_residual_around_a_layer_alike(at, value, want):
    from _helpers import refused_alike

    data = rc.compile(_models()["gru"], "f32").data       # records: recurrent, residual (span 1), linear
    assert rc.load(data).describe().startswith("gru(6) > residual")
    refused_alike(_edit(data, 1, at, value), want, "CORRUPT")


def test_loaders_refuse_a_source_of_another_width_alike():
    """dfn: frame_conv(5->6), frame_conv(6->4), gru(5), tanh, frame_conv(5->6), residual (span 4):
    span 3 reaches the GRU, whose input is 4 wide, span 5 is past the model input."""
    from _helpers import refused_alike

    data = rc.compile(_models()["dfn"], "f32").data
    refused_alike(_edit(data, 5, 12, 3), "record 5 (residual): span: 3: the record that many back takes 4 "
                  "features, this one 6 (they must agree)", "CORRUPT")
    refused_alike(_edit(data, 5, 12, 6), "record 5 (residual): span: 6, expected 1..5", "CORRUPT")


def test_writer_and_compile_refusals_name_the_sizes():
    from rnncore.io.rnc import read_rnc, write_rnc

    d = read_rnc(rc.compile(_models()["gru"], "f32").data)
    d["post"] = [{"kind": "residual", "span": 3}]
    with pytest.raises(ValueError, match=r"post\[0\] \(residual\): span must be 1..1 \(the records before "
                                         r"it in post and, across recurrent layers, before them\), got 3"):
        write_rnc(d)
    with pytest.raises(ValueError, match="LastStep or the head"):
        rc.compile(nn.Sequential(nn.GRU(4, 4), nn.LastStep(), nn.Residual(nn.GRU(4, 4))))


# -- importers -----------------------------------------------------------------------------------
class TorchResGru(torch.nn.Module):   # y = x + gru(x)[0], then a per-step head
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(6, 6, batch_first=True)
        self.head = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.head(x + self.gru(x)[0])


class TorchDfn(torch.nn.Module):      # DeepFilterNet: x + linear_out(gru(linear_in(x)))
    def __init__(self):
        super().__init__()
        self.lin_in = torch.nn.Linear(6, 4)
        self.gru = torch.nn.GRU(4, 5, batch_first=True)
        self.lin_out = torch.nn.Linear(5, 6)
        self.head = torch.nn.Linear(6, 2)

    def forward(self, x):
        y = x + self.lin_out(self.gru(self.lin_in(x))[0])
        return self.head(y)


class TorchGnmt(torch.nn.Module):     # stacked residual LSTMs
    def __init__(self):
        super().__init__()
        self.l1 = torch.nn.LSTM(6, 6, batch_first=True)
        self.l2 = torch.nn.LSTM(6, 6, batch_first=True)
        self.l3 = torch.nn.LSTM(6, 6, batch_first=True)

    def forward(self, x):
        y = self.l1(x)[0]
        y = y + self.l2(y)[0]
        return y + self.l3(y)[0]


TORCH = {"res_gru": TorchResGru, "dfn": TorchDfn, "gnmt": TorchGnmt}


def _torch_model(name):
    torch.manual_seed(sorted(TORCH).index(name) + 3)
    return TORCH[name]().eval()


@pytest.mark.parametrize("name", sorted(TORCH))
def test_from_torch_fx_against_pytorch_with_lengths(name):
    from rnncore.io.torch_import import from_torch

    net = _torch_model(name)
    m = from_torch(net)
    e = rc.compile(m, "f32")
    X = _x((3, 8, 6), seed=30, dtype=np.float32)
    lengths = np.array([8, 5, 2])
    y = e.run(X, lengths)
    with torch.no_grad():
        for b, n in enumerate(lengths):    # each sequence alone, its valid steps: PyTorch's output
            want = net(torch.from_numpy(X[b:b + 1, :n])).numpy()[0]
            np.testing.assert_allclose(y[b, :n], want, atol=1e-5, rtol=0)
            assert not y[b, n:].any()
    want = m.forward(X.astype(m.recurrent_modules[0].dtype), lengths=lengths)
    np.testing.assert_allclose(y, want, atol=1e-6, rtol=0)


def _onnx_export(name, dynamo):
    from _helpers import torch_onnx_export

    return torch_onnx_export("test_engine_residual_rnn:_torch_model", (name,), (2, 5, 6), {0: "b", 1: "T"},
                             dynamo=dynamo, opset=18 if dynamo else 17)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("name", sorted(TORCH))
def test_onnx_add_around_a_recurrent_node_against_onnxruntime(name, dynamo):
    import onnxruntime as ort

    from rnncore.io.onnx_import import from_onnx

    blob = _onnx_export(name, dynamo)
    e = rc.compile(from_onnx(blob))
    assert "residual" in e.describe()
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    for B, T in ((2, 5), (3, 11), (1, 1)):
        X = _x((B, T, 6), seed=B + T, dtype=np.float32)
        np.testing.assert_allclose(e.run(X), sess.run(None, {"x": X})[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_after_an_embedding_the_skip_is_the_token_rows(precision):
    """Embedding > Residual(GRU): the residual adds the embedding's rows (run gathers them for
    every (b, t), step for the stream's rows)."""
    m = nn.Sequential(nn.Embedding(11, 5, seed=33, dtype="float32"), nn.Residual(nn.GRU(5, 5, seed=34,
                      dtype="float32")), nn.Linear(5, 3, seed=35, dtype="float32"))
    e = rc.compile(m, precision)
    assert e.describe() == "embedding(11x5) > gru(5) > residual > linear(5->3)"
    ids = np.random.default_rng(36).integers(0, 11, (3, 7)).astype(np.int32)
    lengths = np.array([7, 4, 1])
    y = e.run(ids, lengths)
    want = m.forward(ids, lengths=lengths)
    np.testing.assert_allclose(y, want, atol=1e-6 if precision == "f32" else 0.1, rtol=0)
    if precision == "q8":
        from _helpers import c_equals_q8_reference

        c_equals_q8_reference(e, ids, lengths)
    s = e.stream(3)
    steps = np.stack([s.step(ids[:, t].copy()) for t in range(7)], 1)
    np.testing.assert_array_equal(steps, e.run(ids))
