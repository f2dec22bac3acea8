"""One direction's final state of a bidirectional layer (PyTorch ``h_n[-2]`` / ``h_n[-1]``):
``rc.nn.LastStep(bidirectional=True, direction="forward" | "backward")`` against PyTorch, finite
differences, and in the engine (f32 vs PyTorch, q8 bit for bit vs the NumPy q8 spec, stream vs run)."""

import numpy as np
import pytest
import torch

import rnncore as rc
from rnncore.gradcheck import check_module
from rnncore.nn.layers import ConcatPool, LastStep

CELLS = {"gru": (torch.nn.GRU, rc.nn.GRU), "lstm": (torch.nn.LSTM, rc.nn.LSTM)}


def _twins(cell, layers, seed, I=3, H=5, dtype=torch.float64):
    """A PyTorch bidirectional GRU/LSTM and its rc.nn twin (same weights)."""
    torch.manual_seed(seed)
    tm = CELLS[cell][0](I, H, num_layers=layers, batch_first=True, bidirectional=True).to(dtype)
    m = CELLS[cell][1](I, H, num_layers=layers, bidirectional=True,
                       dtype="float64" if dtype == torch.float64 else "float32")
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return tm, m


def _h_n(tm, x, lengths):
    """PyTorch's final states of a packed batch, ``(layers * 2, B, H)``."""
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.as_tensor(x), torch.as_tensor(lengths),
                                                     batch_first=True, enforce_sorted=False)
    _, h = tm(packed)
    return h[0] if isinstance(h, tuple) else h


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("layers", [1, 2])
def test_layer_equals_torch_h_n_of_a_packed_bidirectional_layer(cell, layers):
    rng = np.random.default_rng(layers)
    x, lengths = rng.standard_normal((4, 6, 3)), np.array([6, 2, 5, 1])
    tm, m = _twins(cell, layers, seed=3)
    h_n = _h_n(tm, x, lengths).detach().numpy()
    for direction, want in (("backward", h_n[-1]), ("forward", h_n[-2])):
        y = rc.nn.Sequential(m, LastStep(bidirectional=True, direction=direction)).forward(x, lengths=lengths)
        np.testing.assert_allclose(y, want, atol=1e-12)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_layer_backward_equals_torch_and_finite_differences(direction):
    rng = np.random.default_rng(5)
    x, lengths, dy = rng.standard_normal((4, 5, 6)), np.array([5, 1, 3, 4]), rng.standard_normal((4, 3))
    m = LastStep(bidirectional=True, direction=direction)
    tx = torch.tensor(x, requires_grad=True)
    rows = torch.arange(4)
    ty = tx[rows, torch.as_tensor(lengths) - 1, :3] if direction == "forward" else tx[:, 0, 3:]
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(m.forward(x, lengths=lengths, train=True), ty.detach().numpy(), atol=0)
    np.testing.assert_allclose(m.backward(dy), tx.grad.numpy(), atol=0)
    rep = check_module(m, x, lengths=lengths)
    assert rep.ok, rep


def test_layer_refuses_bad_arguments_by_name():
    with pytest.raises(ValueError, match="direction: expected 'both', 'forward' or 'backward', got 'last'"):
        LastStep(bidirectional=True, direction="last")
    with pytest.raises(TypeError, match="direction: expected"):
        LastStep(bidirectional=True, direction=1)
    with pytest.raises(ValueError, match="direction='backward' .* needs bidirectional=True"):
        LastStep(direction="backward")
    with pytest.raises(ValueError, match=r"pools\[0\]: LastStep\(direction='forward'\)"):
        ConcatPool(LastStep(bidirectional=True, direction="forward"), rc.nn.MaskedMean())
    with pytest.raises(ValueError, match="even feature size, got 5"):
        LastStep(bidirectional=True, direction="forward").forward(np.zeros((1, 2, 5)))
    assert "direction='backward'" in repr(LastStep(bidirectional=True, direction="backward"))


# -- the engine: LastStep(bidirectional=True) then a per-step Linear [I | 0] / [0 | I] ------------------
ISAS = rc.isa()["available"]


def _half_model(cell, layers, direction, tail, seed=0, H=5):
    """``cell x2 > LastStep(direction) > tail`` (tail: "none", "norm", "norm_fc", "fc") in float32, and
    its PyTorch twin ``f(h_n[-1 or -2])`` (the same weights)."""
    tm, rnn = _twins(cell, layers, seed, I=6, H=H, dtype=torch.float32)
    mods = [rnn, LastStep(bidirectional=True, direction=direction)]
    tmods = []
    if tail.startswith("norm"):
        torch.manual_seed(seed + 1)
        tn = torch.nn.LayerNorm(H)
        with torch.no_grad():
            tn.weight.uniform_(0.5, 1.5)
            tn.bias.uniform_(-0.5, 0.5)
        n = rc.nn.LayerNorm(H, dtype="float32")
        n.load_state_dict({k: v.detach().numpy() for k, v in tn.state_dict().items()})
        mods.append(n)
        tmods.append(tn)
    if tail.endswith("fc"):
        fc = rc.nn.Linear(H, 3, dtype="float32", seed=seed + 2)
        tf = torch.nn.Linear(H, 3)
        tf.load_state_dict({k: torch.tensor(v) for k, v in fc.state_dict().items()})
        mods.append(fc)
        tmods.append(tf)
    index = -1 if direction == "backward" else -2

    def twin(X, lengths):
        with torch.no_grad():
            y = _h_n(tm, X, lengths)[index]
            for t in tmods:
                y = t(y)
            return y.numpy()

    return rc.nn.Sequential(*mods), twin


def _q8_reference(e, X, lengths):
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "csrc" / "tests"))
    import gen_vectors

    from rnncore.io.rnc import read_rnc
    from rnncore.quant.reference import qmodel_from_rnc
    return gen_vectors.q8_reference_forward(qmodel_from_rnc(read_rnc(e.data)), X, lengths)[0]


CASES = [("gru", 1, "backward", "none"), ("lstm", 2, "backward", "none"), ("gru", 2, "forward", "none"),
         ("lstm", 1, "forward", "norm"), ("gru", 2, "backward", "norm_fc"),
         ("lstm", 2, "backward", "norm_fc"), ("gru", 1, "forward", "norm_fc"), ("lstm", 1, "backward", "fc")]


@pytest.mark.parametrize("cell,layers,direction,tail", CASES)
def test_engine_f32_matches_torch_and_q8_the_spec_on_every_isa(cell, layers, direction, tail):
    m, twin = _half_model(cell, layers, direction, tail, seed=layers)
    rng = np.random.default_rng(7)
    X = rng.standard_normal((5, 8, 6)).astype(np.float32)
    lengths = np.array([8, 3, 1, 6, 5])
    want = twin(X, lengths)
    e = rc.compile(m)
    assert e.output_size == want.shape[1]
    np.testing.assert_allclose(e.run(X, lengths), want, rtol=0, atol=1e-5)
    mask = np.arange(8)[None, :] < lengths[:, None]
    np.testing.assert_array_equal(e.run(X, mask=mask), e.run(X, lengths))
    e8 = rc.compile(m, precision="q8")
    ref = _q8_reference(e8, X, lengths)
    assert np.abs(ref).max() > 0.05
    for isa in ISAS:
        e8.set_isa(isa)
        np.testing.assert_array_equal(e8.run(X, lengths), ref, err_msg=isa)


def test_engine_f32_keeps_the_half_exactly():
    """The selecting Linear adds one input times 1 to zeros: the engine's half is the bidirectional
    pooling's half bit for bit, in both directions."""
    m, _ = _half_model("gru", 2, "backward", "none", seed=4)
    both = rc.compile(rc.nn.Sequential(m[0], LastStep(bidirectional=True)))
    X, lengths = np.random.default_rng(8).standard_normal((3, 6, 6)).astype(np.float32), np.array([6, 2, 4])
    full = both.run(X, lengths)
    H = full.shape[1] // 2
    for direction, half in (("backward", full[:, H:]), ("forward", full[:, :H])):
        e = rc.compile(rc.nn.Sequential(m[0], LastStep(bidirectional=True, direction=direction)))
        np.testing.assert_array_equal(e.run(X, lengths), half)


def test_the_stream_is_refused_as_for_every_bidirectional_model():
    m, _ = _half_model("gru", 1, "backward", "none")
    with pytest.raises(ValueError, match="stream: the model has a bidirectional layer"):
        rc.compile(m).stream(1)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_to_onnx_matches_onnxruntime_and_torch(direction):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    m, twin = _half_model("lstm", 2, direction, "norm_fc", seed=9)
    proto = rc.io.to_onnx(m, None, lengths=True)
    onnx.checker.check_model(proto, full_check=True)
    X = np.random.default_rng(10).standard_normal((4, 6, 6)).astype(np.float32)
    lengths = np.array([6, 1, 4, 3], np.int32)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": X, "lengths": lengths})[0]
    np.testing.assert_allclose(got, twin(X, lengths.astype(np.int64)), rtol=0, atol=1e-5)


# -- from_torch (torch.fx: a module with a front-end) ------------------------------------------------
class _FxNet(torch.nn.Module):
    """Conv1d front-end (read with torch.fx) > bidirectional GRU/LSTM > ``tail(h_n[idx])``."""

    def __init__(self, cell, layers, idx, tail, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv1d(4, 6, 3, padding=1)
        self.rnn = getattr(torch.nn, cell.upper())(6, 5, num_layers=layers, batch_first=True,
                                                   bidirectional=True)
        self.norm, self.fc = torch.nn.LayerNorm(5), torch.nn.Linear(5, 3)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)
        self.idx, self.tail, self.lstm = idx, tail, cell == "lstm"

    def forward(self, x):
        _, h = self.rnn(torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2))
        if self.lstm:
            h = h[0]
        z = h[self.idx]
        if self.tail == "relu":        # element-wise then the output: both states, then the half
            return torch.tanh(z)
        if self.tail == "relu_norm":
            return self.norm(torch.relu(z))
        if self.tail == "fc":          # the import that was there before: [0 | W] / [W | 0]
            return self.fc(z)
        z = self.norm(z) if self.tail.startswith("norm") else z
        return self.fc(z) if self.tail.endswith("fc") else z


def _leaves(m, prefix=""):
    kids = list(m.children()) if hasattr(m, "children") else []
    if not kids:
        return [(prefix, m)]
    return [leaf for name, k in kids for leaf in _leaves(k, f"{prefix}.{name}")]


FX_CASES = [("gru", 1, -1, "none"), ("lstm", 2, -1, "none"), ("gru", 2, -2, "none"), ("lstm", 1, -1, "norm"),
            ("gru", 2, -1, "norm_fc"), ("lstm", 2, -2, "norm_fc"), ("gru", 1, -2, "relu"),
            ("lstm", 1, -1, "relu_norm"), ("gru", 2, -1, "fc")]


@pytest.mark.parametrize("cell,layers,idx,tail", FX_CASES)
def test_from_torch_fx_one_direction_matches_torch(cell, layers, idx, tail):
    net = _FxNet(cell, layers, idx, tail, seed=layers).eval()
    model = rc.io.from_torch(net)
    pools = [m for _, m in _leaves(model) if isinstance(m, LastStep)]
    assert len(pools) == 1 and pools[0].bidirectional
    assert pools[0].direction == ("both" if tail in ("relu", "relu_norm", "fc") else
                                  "backward" if idx == -1 else "forward")
    x = np.random.default_rng(3).standard_normal((3, 7, 4))
    with torch.no_grad():
        want = net.double()(torch.tensor(x)).numpy()
    np.testing.assert_allclose(model.forward(x), want, rtol=1e-9, atol=1e-12)
    e = rc.compile(model)
    net = net.float()
    X, lengths = x.astype(np.float32), np.array([7, 2, 5])
    with torch.no_grad():   # a row of length n: the module on its first n steps
        alone = np.concatenate([net(torch.tensor(X[b:b + 1, :n])).numpy() for b, n in enumerate(lengths)])
    np.testing.assert_allclose(e.run(X, lengths), alone, rtol=0, atol=1e-5)


def test_from_torch_fx_two_final_states_together_are_refused_by_name():
    class Both(_FxNet):
        def forward(self, x):
            _, h = self.rnn(self.conv(x.transpose(1, 2)).transpose(1, 2))
            return h[-1] * h[-2]

    with pytest.raises(ValueError, match=r"node 'mul'.*h_n\[-2\] or h_n\[-1\].*together with another value"):
        rc.io.from_torch(Both("gru", 1, -1, "none").eval())


# -- ONNX: Gather of one row of Y_h (torch.onnx.export of h_n[-1] / h_n[-2]) ---------------------------
class OnnxNet(torch.nn.Module):
    """bidirectional GRU/LSTM (no front-end: the exporter's Y_h, a Concat of them for 2 layers) >
    ``tail(h_n[idx])``."""

    def __init__(self, cell, layers, idx, tail):
        super().__init__()
        torch.manual_seed(layers)
        self.rnn = getattr(torch.nn, cell.upper())(4, 5, num_layers=layers, batch_first=True,
                                                   bidirectional=True)
        self.norm, self.fc = torch.nn.LayerNorm(5), torch.nn.Linear(5, 3)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)
        self.idx, self.tail, self.lstm = idx, tail, cell == "lstm"

    def forward(self, x):
        _, h = self.rnn(x)
        z = (h[0] if self.lstm else h)[self.idx]
        z = self.norm(z) if "norm" in self.tail else z
        return self.fc(z) if "fc" in self.tail else z


def onnx_net(cell, layers, idx, tail):
    return OnnxNet(cell, layers, idx, tail).eval()


ONNX_CASES = [("gru", 1, -1, "fc"), ("lstm", 2, -2, "norm_fc"), ("gru", 2, -1, "norm"),
              ("lstm", 1, 0, "norm")]   # h_n[0] of one bidirectional layer: its forward direction


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("cell,layers,idx,tail", ONNX_CASES)
def test_onnx_final_state_row_compiles_and_matches_onnxruntime(cell, layers, idx, tail):
    ort = pytest.importorskip("onnxruntime")
    from _helpers import q8_check, torch_onnx_export

    data = torch_onnx_export("test_engine_half_state:onnx_net", (cell, layers, idx, tail), (2, 7, 4),
                             {0: "B", 1: "T"}, dynamo=False, opset=17)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    e = rc.compile(rc.io.from_onnx(data))
    assert "last_step > frame_conv" in e.describe()
    X, lengths = np.random.default_rng(11).standard_normal((3, 8, 4)).astype(np.float32), np.array([8, 3, 1])
    np.testing.assert_allclose(e.run(X), sess.run(None, {"x": X})[0], rtol=0, atol=1e-5)
    got = e.run(X, lengths)
    for b, n in enumerate(lengths):      # a row of length n: the graph on its first n steps
        np.testing.assert_allclose(got[b:b + 1], sess.run(None, {"x": X[b:b + 1, :n]})[0], rtol=0, atol=1e-5)
    q8_check(rc.compile(rc.io.from_onnx(data), precision="q8"), e, X, lengths)


@pytest.mark.filterwarnings("ignore")
def test_onnx_an_earlier_layers_final_state_is_refused_by_name():
    from _helpers import torch_onnx_export

    data = torch_onnx_export("test_engine_half_state:onnx_net", ("gru", 2, 0, "fc"), (2, 7, 4),
                             {0: "B", 1: "T"}, dynamo=False, opset=17)
    with pytest.raises(ValueError, match=r"\(Gather\) reads the final state of recurrent layer 0 "
                                         r"\(direction 0\)"):
        rc.compile(rc.io.from_onnx(data))


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_export_c_runs_the_half(tmp_path, precision):
    """``rnncore export-c``: a bidirectional model runs the whole sequence (``--run`` or not), its
    output the engine's."""
    from export_c_run import exported_outputs

    m, _ = _half_model("gru", 2, "backward", "norm_fc", seed=12)
    e = rc.compile(m, precision=precision)
    X = np.random.default_rng(13).standard_normal((6, 6)).astype(np.float32)
    out = exported_outputs(tmp_path, e.data, X, "half")
    np.testing.assert_allclose(out["run"], e.run(X[None]), rtol=0, atol=1e-6)
