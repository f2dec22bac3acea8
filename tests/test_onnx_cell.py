"""Written-out GRU and LSTM cells in single-step streaming graphs ``(x, h[, c]) -> (y, h'[, c'])``,
exported by ``torch.onnx`` (classic and dynamo) from ``nn.GRUCell`` / ``nn.LSTMCell`` and from
hand-written cells (PyTorch's GRU form, the reset-before form, z's role swapped, gates from one
product over ``Concat([x, h])`` as TF / Keras write them), compiled to one engine layer
(rnncore/io/onnx_import/_lower_chunk.py) and run against onnxruntime with h (and c) fed back.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import rnncore as rc
from rnncore.io import from_onnx
from rnncore.io.onnx_import._lower import lower_graph

torch = pytest.importorskip("torch")
F, H = 6, 5


def _export(m, names: list, outs: list, dynamo: bool) -> bytes:
    args = (torch.randn(1, F),) + tuple(torch.zeros(1, H) for _ in names[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            import contextlib
            import os

            with open(os.devnull, "w") as dn, contextlib.redirect_stdout(dn):
                prog = torch.onnx.export(m, args, input_names=names, output_names=outs, dynamo=True,
                                         opset_version=18, verbose=False)
            return prog.model_proto.SerializeToString()
        f = io.BytesIO()
        torch.onnx.export(m, args, f, input_names=names, output_names=outs, opset_version=17, dynamo=False)
        return f.getvalue()


class TorchGRUCell(torch.nn.Module):
    def __init__(self, seed: int) -> None:
        torch.manual_seed(seed)
        super().__init__()
        self.cell, self.out = torch.nn.GRUCell(F, H), torch.nn.Linear(H, 1)

    def forward(self, x, h):
        h2 = self.cell(x, h)
        return torch.sigmoid(self.out(h2)), h2


class TorchLSTMCell(torch.nn.Module):
    def __init__(self, seed: int) -> None:
        torch.manual_seed(seed)
        super().__init__()
        self.cell, self.out = torch.nn.LSTMCell(F, H), torch.nn.Linear(H, 1)

    def forward(self, x, h, c):
        h2, c2 = self.cell(x, (h, c))
        return torch.sigmoid(self.out(h2)), h2, c2


class HandGRU(torch.nn.Module):
    """A GRU written out: ``form`` "after" (PyTorch's n = tanh(W_in x + b_in + r * (W_hn h + b_hn))),
    "before" (n = tanh(W_in x + W_hn (r * h) + b)); ``swapped``: h' = z * n + (1 - z) * h; ``order``
    the Split parts' roles; ``cat``: r and z from one product over Concat([x, h]) (sigmoid then
    split, as TF's GRUCell), the reset-before n from one over Concat([x, r * h])."""

    def __init__(self, seed: int, order: str = "rzn", form: str = "after", swapped: bool = False,
                 cat: bool = False) -> None:
        torch.manual_seed(seed)
        super().__init__()
        self.order, self.form, self.swapped, self.cat = order, form, swapped, cat
        L = torch.nn.Linear
        if cat:
            self.rz = L(F + H, 2 * H)
            self.n = L(F + H, H) if form == "before" else None
            self.nx, self.nh = (None, None) if form == "before" else (L(F, H), L(H, H))
        else:
            self.ih = L(F, 3 * H)
            self.hh = L(H, 3 * H if form == "after" else 2 * H)
            self.un = L(H, H, bias=False) if form == "before" else None
        self.out = L(H, 1)

    def forward(self, x, h):
        f = x
        if self.cat:
            rz = torch.sigmoid(self.rz(torch.cat([f, h], 1)))
            g = dict(zip(self.order[:2], rz.split(H, 1), strict=True))
            r, z = g["r"], g["z"]
            if self.form == "before":
                n = torch.tanh(self.n(torch.cat([f, r * h], 1)))
            else:
                n = torch.tanh(self.nx(f) + r * self.nh(h))
        else:
            gi = dict(zip(self.order, self.ih(f).split(H, 1), strict=True))
            gh = dict(zip([c for c in self.order if c != "n" or self.form == "after"], self.hh(h).split(H, 1),
                          strict=True))
            r, z = torch.sigmoid(gi["r"] + gh["r"]), torch.sigmoid(gh["z"] + gi["z"])
            if self.form == "after":
                n = torch.tanh(gi["n"] + r * gh["n"])
            else:
                n = torch.tanh(gi["n"] + self.un(r * h))
        h2 = z * n + (1 - z) * h if self.swapped else (1 - z) * n + z * h
        return torch.sigmoid(self.out(h2)), h2


class CatLSTM(torch.nn.Module):
    """TF1's BasicLSTMCell: one product over Concat([x, h]), split i, j (the candidate), f, o, the
    forget bias added to f: c' = c * sigmoid(f + 1) + sigmoid(i) * tanh(j)."""

    def __init__(self, seed: int) -> None:
        torch.manual_seed(seed)
        super().__init__()
        self.w, self.out = torch.nn.Linear(F + H, 4 * H), torch.nn.Linear(H, 1)

    def forward(self, x, h, c):
        i, j, f, o = self.w(torch.cat([x, h], 1)).split(H, 1)
        c2 = c * torch.sigmoid(f + 1.0) + torch.sigmoid(i) * torch.tanh(j)
        h2 = torch.sigmoid(o) * torch.tanh(c2)
        return torch.sigmoid(self.out(h2)), h2, c2


def _ort_loop(blob: bytes, names: list, X: np.ndarray, st: list) -> tuple:
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    ys = []
    for x in X:
        out = sess.run(None, dict(zip(names, [x[None]] + st, strict=True)))
        ys.append(out[0][0])
        st = out[1:]
    return np.array(ys), st


def _state(st0: list):
    """The engine's state from the graph's state inputs (1, H): (h, c) for an LSTM, h for a GRU."""
    st = tuple(s[None] for s in st0)
    return st if len(st) == 2 else st[0]


def _check(m, lstm: bool, dynamo: bool, seed: int = 0, steps: int = 50) -> rc.Engine:
    """Export, compile f32, and compare engine.run and stream.step over ``steps`` steps (the state fed
    back) with onnxruntime from a random state; returns the engine's graph."""
    names = ["x", "h", "c"] if lstm else ["x", "h"]
    outs = ["y", "hn", "cn"] if lstm else ["y", "hn"]
    blob = _export(m.eval(), names, outs, dynamo)
    ops = [n.op_type for n in onnx.load_from_string(blob).graph.node]
    assert "GRU" not in ops and "LSTM" not in ops and "Sigmoid" in ops
    g = from_onnx(blob, input_shapes={n: (1, F if n == "x" else H) for n in names})
    eng = rc.compile(g)
    assert eng.graph_io == {"data_input": "x", "data_output": "y", "state_inputs": names[1:],
                            "state_outputs": outs[1:], "state_rows": None}
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((steps, F)).astype(np.float32)
    st0 = [(rng.standard_normal((1, H)) * 0.5).astype(np.float32) for _ in names[1:]]
    want, st_want = _ort_loop(blob, names, X, st0)
    Y, st = eng.run(X[None], state=_state(st0), return_state=True)
    np.testing.assert_allclose(Y[0], want, rtol=0, atol=1e-5)
    for a, b in zip(st if lstm else (st,), st_want, strict=True):
        np.testing.assert_allclose(a[0], b, rtol=0, atol=1e-5)
    stream = eng.stream()
    stream.state = _state(st0)
    got = np.array([stream.step(x[None])[0] for x in X])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    return blob, g, X, st0, want


DYN = [False, True]


@pytest.mark.parametrize("dynamo", DYN)
def test_torch_grucell_export_compiles_to_one_gru(dynamo):
    blob, g, *_ = _check(TorchGRUCell(1), lstm=False, dynamo=dynamo)
    kinds = [type(m).__name__ for m in lower_graph(g)[0]]
    assert kinds == ["GRU", "Linear", "Sigmoid"]


@pytest.mark.parametrize("dynamo", DYN)
def test_torch_lstmcell_export_compiles_to_one_lstm(dynamo):
    _check(TorchLSTMCell(2), lstm=True, dynamo=dynamo)


@pytest.mark.parametrize("order, form, swapped, cat, dynamo", [
    ("rzn", "after", False, False, False), ("nzr", "after", False, False, False),
    ("zrn", "before", False, False, False), ("rzn", "after", True, False, False),
    ("znr", "before", True, False, False), ("rz", "after", False, True, False),
    ("zr", "before", False, True, False), ("zr", "before", True, True, False),
    ("nzr", "after", True, False, True), ("zr", "before", False, True, True)])
def test_handwritten_gru_forms_compile_and_match_onnxruntime(order, form, swapped, cat, dynamo):
    """Both GRU forms, any gate order, z's role swapped (exact: the engine's z is sigmoid of the
    negated pre-activation, 1 - sigmoid(a) = sigmoid(-a)), and the Concat([x, h]) product."""
    blob, g, *_ = _check(HandGRU(3, order, form, swapped, cat), lstm=False, dynamo=dynamo)
    gru = [m for m in lower_graph(g)[0] if type(m).__name__ == "GRU"]
    assert len(gru) == 1 and gru[0].reset_after == (form == "after")


@pytest.mark.parametrize("dynamo", DYN)
def test_concat_lstm_with_forget_bias_compiles_and_matches_onnxruntime(dynamo):
    _check(CatLSTM(4), lstm=True, dynamo=dynamo)


@pytest.mark.parametrize("lstm", [False, True])
def test_q8_cell_graph_stays_close_to_onnxruntime(lstm):
    """q8 (int8 weights and per-step activations) over 200 fed-back steps: within 5e-3 of
    onnxruntime's sigmoid outputs (measured 8.8e-4 GRU, 7.4e-4 LSTM)."""
    m = TorchLSTMCell(5) if lstm else HandGRU(5, "zrn", "before", True, False)
    blob, g, X, st0, _ = _check(m, lstm=lstm, dynamo=False, steps=10)
    rng = np.random.default_rng(9)
    X = rng.standard_normal((200, F)).astype(np.float32)
    names = ["x", "h", "c"] if lstm else ["x", "h"]
    want, _ = _ort_loop(blob, names, X, st0)
    eng = rc.compile(g, precision="q8")
    Y = eng.run(X[None], state=_state(st0))
    err = np.abs(Y[0] - want).max()
    print(f"q8 {'lstm' if lstm else 'gru'}: max |y - onnxruntime| = {err:.2e}")
    assert err < 5e-3


# ---- near misses --------------------------------------------------------------------------------
class _Miss(torch.nn.Module):
    def __init__(self, kind: str) -> None:
        torch.manual_seed(6)
        super().__init__()
        self.kind = kind
        self.ih, self.hh = torch.nn.Linear(F, 3 * H), torch.nn.Linear(H, 3 * H)
        self.out = torch.nn.Linear(H, 1)

    def forward(self, x, h):
        ir, iz, i_n = self.ih(x).split(H, 1)
        hr, hz, hn = self.hh(h).split(H, 1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        if self.kind == "no_reset":                 # n = tanh(W_in x + W_hn h): no r
            n = torch.tanh(i_n + hn)
            h2 = (1 - z) * n + z * h
        elif self.kind == "two_gates":              # (1 - z) * n + r * h
            n = torch.tanh(i_n + r * hn)
            h2 = (1 - z) * n + r * h
        elif self.kind == "two_minus_z":            # (2 - z) * n + z * h
            n = torch.tanh(i_n + r * hn)
            h2 = (2 - z) * n + z * h
        elif self.kind == "tanh_z":                 # tanh(z) * h
            n = torch.tanh(i_n + r * hn)
            h2 = (1 - z) * n + torch.tanh(iz + hz) * h
        return torch.sigmoid(self.out(h2)), h2


def _node_of(blob: bytes, op: str, k: int = -1) -> str:
    return [n.name for n in onnx.load_from_string(blob).graph.node if n.op_type == op][k]


@pytest.mark.parametrize("kind, op, k, why", [
    ("no_reset", "Add", -1, r"completes a GRU whose n \(gate part 2\) reads \['h', 'x'\]: expected x and "
                            r"r \* \(W_hn h \+ b_hn\) \(PyTorch\) or W_hn \(r \* h\) \(reset before\)"),
    ("two_gates", "Add", -1, r"combines two different gates .* where a GRU has one"),
    ("two_minus_z", "Sub", 0, r"subtracts gate part 1 from other than the constant 1"),
    ("tanh_z", "Mul", 2, r"multiplies the state's input 'h' by tanh of gate part 1: the forget gate is a "
                         r"sigmoid \(f \* c in an LSTM, z \* h or r \* h in a GRU\)"),
])
def test_almost_a_gru_cell_is_refused_naming_the_node(kind, op, k, why):
    blob = _export(_Miss(kind).eval(), ["x", "h"], ["y", "hn"], dynamo=False)
    node = _node_of(blob, op, k)
    g = from_onnx(blob, input_shapes={"x": (1, F), "h": (1, H)})
    with pytest.raises(ValueError, match=rf"node '{node}' \({op}\) {why}"):
        rc.compile(g)


def test_bare_grucell_graph_its_new_h_is_the_output_and_the_state():
    """``(x, h) -> h'`` alone: engine.run's per-step output is h', equal to onnxruntime's."""

    class Bare(torch.nn.Module):
        def __init__(self) -> None:
            torch.manual_seed(8)
            super().__init__()
            self.cell = torch.nn.GRUCell(F, H)

        def forward(self, x, h):
            return self.cell(x, h)

    blob = _export(Bare().eval(), ["x", "h"], ["hn"], dynamo=False)
    eng = rc.compile(from_onnx(blob, input_shapes={"x": (1, F), "h": (1, H)}))
    assert eng.graph_io["data_output"] == "hn" and eng.graph_io["state_outputs"] == ["hn"]
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, F)).astype(np.float32)
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    h, want = np.zeros((1, H), np.float32), []
    for x in X:
        (h,) = sess.run(None, {"x": x[None], "h": h})
        want.append(h[0])
    Y, st = eng.run(X[None], return_state=True)
    np.testing.assert_allclose(Y[0], np.array(want), rtol=0, atol=1e-5)
    np.testing.assert_allclose(st[0], h, rtol=0, atol=1e-5)


# ---- Keras cells (keras 3 on the torch backend, exported by torch.onnx) -------------------------
def _keras_cell_graph(kind: str) -> tuple:
    """A Keras ``GRUCell`` (reset_after True / False) or ``LSTMCell`` called once on ``(x, h[, c])``,
    its random weights (Keras's own initialisers, biases drawn), exported by the classic exporter:
    Keras's gate order (z, r, h / i, f, c, o), its ``inner[:, :H]`` Slices and its Casts."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.fail(f"keras runs on {keras.backend.backend()!r}; these tests export through torch")
    keras.utils.set_random_seed(11)
    lstm = kind == "lstm"
    names = ["x", "h", "c"] if lstm else ["x", "h"]
    ins = [keras.Input((F,), batch_size=1)] + [keras.Input((H,), batch_size=1) for _ in names[1:]]
    cell = keras.layers.LSTMCell(H) if lstm else keras.layers.GRUCell(H, reset_after=kind == "gru")
    _, st = cell(ins[0], ins[1:])
    km = keras.Model(ins, list(st))
    rng = np.random.default_rng(12)
    km.set_weights([w if w.ndim == 2 else rng.standard_normal(w.shape).astype(np.float32) * 0.5
                    for w in km.get_weights()])

    class Wrap(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.km = km

        def forward(self, *a):
            out = self.km(list(a))
            return tuple(out) if isinstance(out, list | tuple) else out

    blob = _export(Wrap().eval(), names, ["hn", "cn"] if lstm else ["hn"], dynamo=False)
    return blob, names


@pytest.mark.parametrize("kind", ["gru", "gru_before", "lstm"])
def test_keras_cells_compile_and_match_onnxruntime(kind):
    blob, names = _keras_cell_graph(kind)
    ops = [n.op_type for n in onnx.load_from_string(blob).graph.node]
    assert "MatMul" in ops and "GRU" not in ops and "LSTM" not in ops
    g = from_onnx(blob, input_shapes={n: (1, F if n == "x" else H) for n in names})
    layers = lower_graph(g)[0]
    assert [type(m).__name__ for m in layers] == ["LSTM" if kind == "lstm" else "GRU"]
    if kind != "lstm":
        assert layers[0].reset_after == (kind == "gru")
    eng = rc.compile(g)
    rng = np.random.default_rng(13)
    X = rng.standard_normal((50, F)).astype(np.float32)
    st0 = [(rng.standard_normal((1, H)) * 0.5).astype(np.float32) for _ in names[1:]]
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    st, want = st0, []
    for x in X:
        st = sess.run(None, dict(zip(names, [x[None]] + st, strict=True)))
        want.append(st[0][0])
    Y, fin = eng.run(X[None], state=_state(st0), return_state=True)
    np.testing.assert_allclose(Y[0], np.array(want), rtol=0, atol=1e-5)
    for a, b in zip(fin if kind == "lstm" else (fin,), st, strict=True):
        np.testing.assert_allclose(a[0], b, rtol=0, atol=1e-5)


class _LstmMiss(torch.nn.Module):
    """nn.LSTMCell's maths written out with one slip: ``c' = f * h + i * g`` (h read as c), or
    ``h' = o * tanh(c)`` of the old c (``stale``)."""

    def __init__(self, kind: str) -> None:
        torch.manual_seed(10)
        super().__init__()
        self.kind = kind
        self.ih, self.hh = torch.nn.Linear(F, 4 * H), torch.nn.Linear(H, 4 * H)

    def forward(self, x, h, c):
        i, f, g, o = (self.ih(x) + self.hh(h)).split(H, 1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c2 = f * (h if self.kind == "h_as_c" else c) + i * g
        h2 = o * torch.tanh(c2 if self.kind == "h_as_c" else c)
        return (h2 + c if self.kind == "h_as_c" else h2 * 1.0), h2, c2


@pytest.mark.parametrize("kind, op, k, why", [
    ("h_as_c", "Mul", -1, r"reads the state input 'h' as c, an input the graph uses otherwise "
                          r"\(\{'h': 'h'\}\)"),
    ("stale", "Tanh", -1, r"computes with the state \(Tanh\) outside a gate of an LSTM or GRU cell"),
])
def test_almost_an_lstm_cell_with_its_own_state_inputs_is_refused(kind, op, k, why):
    blob = _export(_LstmMiss(kind).eval(), ["x", "h", "c"], ["y", "hn", "cn"], dynamo=False)
    node = _node_of(blob, op, k)
    g = from_onnx(blob, input_shapes={"x": (1, F), "h": (1, H), "c": (1, H)})
    with pytest.raises(ValueError, match=rf"node '{node}' \({op}\) {why}"):
        rc.compile(g)


def test_cell_graph_batch_of_streams_is_the_graph_per_stream():
    """engine.run with 3 streams of the nn.LSTMCell graph: each row is onnxruntime fed that
    stream's inputs and its own state, from zeros."""
    blob = _export(TorchLSTMCell(14).eval(), ["x", "h", "c"], ["y", "hn", "cn"], dynamo=False)
    eng = rc.compile(from_onnx(blob, input_shapes={"x": (1, F), "h": (1, H), "c": (1, H)}))
    X = np.random.default_rng(15).standard_normal((3, 40, F)).astype(np.float32)
    Y, (h, c) = eng.run(X, return_state=True)
    for b in range(3):
        want, (hw, cw) = _ort_loop(blob, ["x", "h", "c"], X[b], [np.zeros((1, H), np.float32)] * 2)
        np.testing.assert_allclose(Y[b], want, rtol=0, atol=1e-5)
        np.testing.assert_allclose(h[0, b], hw[0], rtol=0, atol=1e-5)
        np.testing.assert_allclose(c[0, b], cw[0], rtol=0, atol=1e-5)
