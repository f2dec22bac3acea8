"""The recurrent configurations PyTorch's own test suites build (test_nn.py, nn/test_packed_sequence.py,
onnx/test_pytorch_onnx_onnxruntime.py), imported with ``rc.io.from_torch`` and, for a subset,
exported with ``torch.onnx.export`` and imported with ``rc.io.from_onnx``.

Every case builds its module with seeded random weights and compares against PyTorch itself
(float64: the NumPy model within 1e-10; float32: the compiled f32 engine within 1e-5, outputs and
final states, with and without lengths) or against onnxruntime; configurations the engine cannot
run are refused with a message that is checked here.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import torch
from _helpers import engine_state as _engine_state
from _helpers import flat_state as _flat_state
from torch.nn.utils import rnn as rnn_utils

import rnncore as rc
from rnncore.io.onnx_import import from_onnx
from rnncore.io.torch_import import from_torch

# mode, constructor kwargs (input_size, hidden_size given separately)
CONFIGS = {
    "rnn_tanh": ("RNN", dict()),
    "rnn_relu_l3": ("RNN", dict(nonlinearity="relu", num_layers=3)),
    "rnn_tanh_bidir_l2_nobias": ("RNN", dict(num_layers=2, bidirectional=True, bias=False)),
    "rnn_relu_bidir": ("RNN", dict(nonlinearity="relu", bidirectional=True, dropout=0.0)),
    "gru": ("GRU", dict()),
    "gru_l2_dropout": ("GRU", dict(num_layers=2, dropout=0.5)),
    "gru_bidir_l3": ("GRU", dict(num_layers=3, bidirectional=True)),
    "gru_nobias_bidir": ("GRU", dict(bias=False, bidirectional=True)),
    "lstm": ("LSTM", dict()),
    "lstm_l2": ("LSTM", dict(num_layers=2, dropout=0.3)),
    "lstm_bidir_l3": ("LSTM", dict(num_layers=3, bidirectional=True)),
    "lstm_nobias_l2": ("LSTM", dict(bias=False, num_layers=2)),
    "lstm_proj": ("LSTM", dict(proj_size=2)),
    "lstm_proj_bidir_l2": ("LSTM", dict(proj_size=2, num_layers=2, bidirectional=True)),
    "lstm_proj_nobias_l3": ("LSTM", dict(proj_size=1, num_layers=3, bias=False)),
}
SIZES = {"i5h3": (5, 3), "i1h1": (1, 1), "i17h8": (17, 8)}


def _module(name, batch_first, dtype=torch.float64, sizes=(5, 3), seed=0):
    mode, kw = CONFIGS[name]
    torch.manual_seed(seed)
    m = getattr(torch.nn, mode)(*sizes, batch_first=batch_first, **kw)
    with torch.no_grad():   # larger than the default init (1/sqrt(H)), so every weight matters
        for p in m.parameters():
            p.uniform_(-0.8, 0.8)
    return m.to(dtype).eval()


def _h0(m, B, g):
    D = 2 if m.bidirectional else 1
    P = m.proj_size or m.hidden_size
    h = g.standard_normal((m.num_layers * D, B, P)) * 0.5
    if m.mode == "LSTM":
        return h, g.standard_normal((m.num_layers * D, B, m.hidden_size)) * 0.5
    return (h,)


def _torch_run(m, x, lengths, h0, batch_first, enforce_sorted=False):
    """PyTorch's outputs (B, T, D*P), zero past a length, and final states, for batch-major x."""
    dt = next(m.parameters()).dtype
    T = x.shape[1]
    xt = torch.as_tensor(x, dtype=dt)
    if not batch_first:
        xt = xt.transpose(0, 1)
    if lengths is not None:
        xt = rnn_utils.pack_padded_sequence(xt, torch.as_tensor(lengths), batch_first=batch_first,
                                            enforce_sorted=enforce_sorted)
    hx = None
    if h0 is not None:
        hx = tuple(torch.as_tensor(a, dtype=dt) for a in h0)
        hx = hx if m.mode == "LSTM" else hx[0]
    with torch.no_grad():
        y, h = m(xt, hx)
    if lengths is not None:
        y, _ = rnn_utils.pad_packed_sequence(y, batch_first=batch_first, total_length=T)
    if not batch_first:
        y = y.transpose(0, 1)
    return y.numpy(), [a.numpy() for a in (h if isinstance(h, tuple) else (h,))]


def _close(got, ref, tol):
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * scale)


def _lengths(B, T, kind, g):
    if kind == "full":
        return None
    if kind == "sorted":      # enforce_sorted=True: decreasing lengths
        return np.sort(g.integers(1, T + 1, B))[::-1].copy()
    n = g.integers(1, T + 1, B)
    n[0] = T
    n[-1] = 1              # a length-1 sequence
    return n


# -- the layers themselves: NumPy model (float64) and the f32 engine, against PyTorch ------------------
@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("batch_first", [True, False], ids=["bf", "tm"])
@pytest.mark.parametrize("lengths_kind,with_h0", [("full", False), ("sorted", True), ("unsorted", False),
                                                   ("unsorted", True)])
def test_layer_matches_torch(name, batch_first, lengths_kind, with_h0):
    g = np.random.default_rng(zlib.crc32(f"{name}{batch_first}{lengths_kind}{with_h0}".encode()))
    B, T, Fin = 5, 7, 5
    m = _module(name, batch_first)
    x = g.standard_normal((B, T, Fin))
    lengths = _lengths(B, T, lengths_kind, g)
    h0 = _h0(m, B, g) if with_h0 else None
    y_t, h_t = _torch_run(m, x, lengths, h0, batch_first, enforce_sorted=lengths_kind == "sorted")

    ours = from_torch(m)
    y, h = ours.forward(x, state=None if h0 is None else (h0 if m.mode == "LSTM" else h0[0]),
                        lengths=lengths)
    np.testing.assert_allclose(y, y_t, rtol=1e-10, atol=1e-10)
    for a, b in zip(h if isinstance(h, tuple) else (h,), h_t, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)

    m32 = m.float()
    y_t, h_t = _torch_run(m32, x.astype(np.float32), lengths, h0, batch_first,
                          enforce_sorted=lengths_kind == "sorted")
    eng = rc.compile(from_torch(m32, dtype="float32"), precision="f32")
    x32 = x.astype(np.float32)
    _, template = eng.run(x32[:, :1], return_state=True)
    st0 = None if h0 is None else _engine_state(template, list(h0))
    y, st = eng.run(x32, lengths=lengths, state=st0, return_state=True)
    _close(y, y_t, 1e-5)
    for a, b in zip(_flat_state(st), h_t, strict=True):
        _close(a, b, 1e-5)


@pytest.mark.parametrize("name,sizes", [
    (n, s) for n in ("rnn_relu_bidir", "gru_bidir_l3", "lstm_proj_bidir_l2")
    for s in SIZES if not (n.startswith("lstm_proj") and s == "i1h1")])
def test_input_and_hidden_sizes(name, sizes):
    """Input/hidden sizes 1, odd and past one SIMD register; batch 1 and T 1 included (proj_size
    2 needs hidden_size > 2)."""
    I, H = SIZES[sizes]
    g = np.random.default_rng(7)
    m = _module(name, True, torch.float32, sizes=(I, H))
    for B, T in ((1, 1), (1, 9), (6, 1), (3, 12)):
        x = g.standard_normal((B, T, I)).astype(np.float32)
        lengths = None if B == 1 else g.integers(1, T + 1, B)
        y_t, h_t = _torch_run(m, x, lengths, None, True)
        eng = rc.compile(from_torch(m, dtype="float32"), precision="f32")
        y, st = eng.run(x, lengths=lengths, return_state=True)
        _close(y, y_t, 1e-5)
        for a, b in zip(_flat_state(st), h_t, strict=True):
            _close(a, b, 1e-5)


@pytest.mark.parametrize("name", ["rnn_tanh", "gru_bidir_l3", "lstm_proj_bidir_l2"])
def test_zero_length_sequence_keeps_its_state(name):
    """PyTorch refuses a length of 0 in a PackedSequence; the engine keeps that sequence's
    initial state and outputs zeros, and the other sequences are PyTorch's."""
    g = np.random.default_rng(8)
    m = _module(name, True, torch.float32)
    B, T = 4, 6
    x = g.standard_normal((B, T, 5)).astype(np.float32)
    lengths = np.array([6, 0, 3, 1])
    h0 = _h0(m, B, g)
    eng = rc.compile(from_torch(m, dtype="float32"), precision="f32")
    _, template = eng.run(x[:, :1], return_state=True)
    y, st = eng.run(x, lengths=lengths, state=_engine_state(template, list(h0)), return_state=True)
    keep = lengths > 0
    y_t, h_t = _torch_run(m, x[keep], lengths[keep], tuple(a[:, keep] for a in h0), True)
    _close(y[keep], y_t, 1e-5)
    assert not y[~keep].any()
    for a, b, a0 in zip(_flat_state(st), h_t, h0, strict=True):
        _close(a[:, keep], b, 1e-5)
        np.testing.assert_array_equal(a[:, ~keep], a0[:, ~keep].astype(np.float32))


@pytest.mark.parametrize("name", ["gru_l2_dropout", "lstm_bidir_l3"])
def test_float64_module_flattened_and_in_train_mode(name):
    """A float64 module imported as float32 (weights cast), after ``flatten_parameters()``, and
    a module left in train mode: its inter-layer dropout is a training-time op, so the import is
    the eval-mode network."""
    m = _module(name, False, torch.float64)
    m.flatten_parameters()
    m.train()
    g = np.random.default_rng(9)
    x = g.standard_normal((3, 8, 5))
    ours = from_torch(m, dtype="float32")
    assert m.training   # the import leaves the module's mode alone
    m.eval()
    y_t, h_t = _torch_run(m, x, None, None, False)
    y = rc.compile(ours, precision="f32").run(x.astype(np.float32))
    _close(y, y_t, 1e-5)


class _Head(torch.nn.Module):
    def __init__(self, layer, head):
        super().__init__()
        self.layer = layer
        self.head = head

    def forward(self, x):
        return self.head(self.layer(x)[0])


@pytest.mark.filterwarnings("ignore:.*weight_norm")
@pytest.mark.parametrize("form", ["weight_norm", "parametrizations", "in_a_container"])
def test_weight_norm_is_the_weight_forward_uses(form):
    """PyTorch's RNN weight-norm tests: the state dict holds ``weight_hh_l0_g``/``_v`` (or
    ``parametrizations.weight_hh_l0.original0/1``), forward uses g * v / |v|."""
    torch.manual_seed(5)
    m = torch.nn.LSTM(5, 4, num_layers=2, batch_first=True, bidirectional=True)
    if form == "weight_norm":
        m = torch.nn.utils.weight_norm(m, "weight_hh_l0")
    else:
        m = torch.nn.utils.parametrizations.weight_norm(m, "weight_ih_l1_reverse")
    with torch.no_grad():   # g away from |v| (its value at the start), so that it counts
        for n, p in m.named_parameters():
            if n.endswith("_g") or n.endswith("original0"):
                p.mul_(2.5)
    if form == "in_a_container":
        m = _Head(m, torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(8, 3)))
    m = m.eval()
    x = np.random.default_rng(6).standard_normal((3, 6, 5)).astype(np.float32)
    with torch.no_grad():
        ref = m(torch.as_tensor(x))
    ref = (ref[0] if isinstance(ref, tuple) else ref).numpy()
    y = rc.compile(from_torch(m, dtype="float32"), precision="f32").run(x)
    _close(y, ref, 1e-5)


@pytest.mark.parametrize("low", ["float16", "bfloat16"])
@pytest.mark.parametrize("container", [False, True])
def test_half_precision_modules_import_their_weights(low, container):
    """A float16 / bfloat16 module (NumPy has no bfloat16): the import computes in float32 with
    the module's weights, exactly what PyTorch computes with the module cast to float32."""
    m = _module("lstm_bidir_l3", True, torch.float32)
    if container:
        torch.manual_seed(7)
        m = _Head(m, torch.nn.Linear(6, 2))
    m = m.to(getattr(torch, low))
    ours = rc.compile(from_torch(m, dtype="float32"), precision="f32")
    x = np.random.default_rng(13).standard_normal((3, 6, 5)).astype(np.float32)
    with torch.no_grad():
        ref = m.float()(torch.as_tensor(x))
    ref = (ref[0] if isinstance(ref, tuple) else ref).numpy()
    _close(ours.run(x), ref, 1e-5)


def test_torchscript_module_is_refused_naming_what_to_pass():
    m = _module("gru", True, torch.float32)
    for scripted in (torch.jit.script(m), torch.jit.trace(m, torch.zeros(2, 3, 5))):
        with pytest.raises(ValueError, match=r"module 'GRU' is a TorchScript module \(\w+\); expected the "
                                             r"torch\.nn\.Module itself"):
            from_torch(scripted)


def _unroll(cell, x, state):
    out = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            state = cell(x[:, t], state)
            out.append(state[0] if isinstance(state, tuple) else state)
    return torch.stack(out, 1).numpy(), state


@pytest.mark.parametrize("cell,kw", [("RNNCell", dict(nonlinearity="tanh")), ("RNNCell", dict(bias=False)),
                                     ("RNNCell", dict(nonlinearity="relu")), ("GRUCell", {}),
                                     ("GRUCell", dict(bias=False)), ("LSTMCell", {}),
                                     ("LSTMCell", dict(bias=False))])
@pytest.mark.parametrize("with_h0", [False, True])
def test_cell_unrolled_in_a_loop(cell, kw, with_h0):
    torch.manual_seed(4)
    m = getattr(torch.nn, cell)(5, 4, **kw).eval()
    g = np.random.default_rng(10)
    x = g.standard_normal((3, 6, 5)).astype(np.float32)
    h0 = g.standard_normal((3, 4)).astype(np.float32)
    c0 = g.standard_normal((3, 4)).astype(np.float32)
    st = None
    if with_h0:
        st = (torch.as_tensor(h0), torch.as_tensor(c0)) if cell == "LSTMCell" else torch.as_tensor(h0)
    y_t, fin = _unroll(m, torch.as_tensor(x), st)
    eng = rc.compile(from_torch(m, dtype="float32"), precision="f32")
    state = None
    if with_h0:
        state = (h0[None], c0[None]) if cell == "LSTMCell" else h0[None]
    y, s = eng.run(x, state=state, return_state=True)
    _close(y, y_t, 1e-5)
    fin = fin if isinstance(fin, tuple) else (fin,)
    for a, b in zip(_flat_state(s), fin, strict=True):
        _close(a[0], b.numpy(), 1e-5)


class _CellLoop(torch.nn.Module):
    """A cell in the module's own loop over time (test_nn.py's cell tests: ``for i in range(T):
    hx = cell(input[i], hx)``), time-major or batch-first, with a head on the last state."""

    def __init__(self, cell, time_major):
        super().__init__()
        self.cell = cell
        self.time_major = time_major
        self.head = torch.nn.Linear(cell.hidden_size, 2)

    def forward(self, x):
        steps = x.unbind(0) if self.time_major else x.unbind(1)
        state = None
        for xt in steps:
            state = self.cell(xt, state)
        return self.head(state[0] if isinstance(state, tuple) else state)


@pytest.mark.parametrize("cell", ["RNNCell", "GRUCell", "LSTMCell"])
@pytest.mark.parametrize("time_major", [False, True])
def test_cell_in_the_modules_own_loop(cell, time_major):
    torch.manual_seed(8)
    m = _CellLoop(getattr(torch.nn, cell)(5, 4), time_major).eval()
    ours = from_torch(m, dtype="float32")
    assert [type(x).__name__ for x in ours] == [cell[:-4], "LastStep", "Linear"]
    x = np.random.default_rng(14).standard_normal((3, 7, 5)).astype(np.float32)
    xt = torch.as_tensor(x).transpose(0, 1) if time_major else torch.as_tensor(x)
    with torch.no_grad():
        ref = m(xt).numpy()
    _close(rc.compile(ours, precision="f32").run(x), ref, 1e-5)


def test_damaged_state_dicts_are_refused():
    sd = _module("lstm_bidir_l3", True).state_dict()
    d = dict(sd)
    del d["bias_hh_l2_reverse"]
    with pytest.raises(ValueError, match=r"the state dict has biases but not \['bias_hh_l2_reverse'\] "
                                         r"\(expected all 12 or none\)"):
        from_torch(d)
    d = {k: v for k, v in sd.items() if not k.startswith("bias")}     # bias=False: zeros
    assert not from_torch(d).state_dict()["bias_hh_l2_reverse"].any()
    with pytest.raises(ValueError, match=r"nonlinearity='relu' is for an nn.RNN's state dict; the weights "
                                         r"are an nn.GRU's \(expected nonlinearity='tanh'"):
        from_torch(_module("gru", True).state_dict(), nonlinearity="relu")


class _LstmSequence(torch.nn.Module):
    """LSTM -> Linear -> LSTM -> Linear, bidirectional, batch-first (test_lstm_sequence's shape)."""

    def __init__(self):
        super().__init__()
        self.rnn1 = torch.nn.LSTM(5, 4, bidirectional=True, batch_first=True)
        self.linear1 = torch.nn.Linear(8, 5)
        self.rnn2 = torch.nn.LSTM(5, 4, bidirectional=True, batch_first=True)
        self.linear2 = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.linear2(self.rnn2(self.linear1(self.rnn1(x)[0]))[0])


class _Returns(torch.nn.Module):
    """The layer's whole result (y, (h, c)), time-major, no state given (test_lstm_default_init_state)."""

    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.LSTM(5, 4, num_layers=2)

    def forward(self, x):
        return self.rnn(x)


class _OnesState(torch.nn.Module):
    """An initial state of ones built in forward (test_lstm_fixed_batch_size's shape)."""

    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.LSTM(5, 4, batch_first=True)

    def forward(self, x):
        h0 = torch.ones(1, x.shape[0], 4)
        return self.rnn(x, (h0, h0))[0]


@pytest.mark.parametrize("cls,time_major", [(_LstmSequence, False), (_Returns, True)])
def test_containers_of_the_onnx_suite(cls, time_major):
    torch.manual_seed(9)
    m = cls().eval()
    x = np.random.default_rng(15).standard_normal((3, 7, 5)).astype(np.float32)
    with torch.no_grad():
        ref = m(torch.as_tensor(x).transpose(0, 1) if time_major else torch.as_tensor(x))
    ref = ref[0] if isinstance(ref, tuple) else ref
    ref = (ref.transpose(0, 1) if time_major else ref).numpy()
    _close(rc.compile(from_torch(m, dtype="float32"), precision="f32").run(x), ref, 1e-5)


def test_initial_state_built_in_forward_is_refused():
    with pytest.raises(ValueError, match=r"could not tell how _OnesState\.forward combines \['LSTM'\].*"
                                         r"read with torch\.fx: .*node 'getattr_1'"):
        from_torch(_OnesState().eval())


# -- modules around the layer: PyTorch's packed-sequence wrappers ----------------------------------
class _Packed(torch.nn.Module):
    """pack_padded_sequence -> layer -> pad_packed_sequence, lengths as forward's argument (the wrapper
    PyTorch's ONNX tests put around every recurrent layer), then a head per step or on h_n."""

    def __init__(self, layer, batch_first, enforce_sorted=False, pool=None):
        super().__init__()
        self.model = layer
        self.batch_first = batch_first
        self.enforce_sorted = enforce_sorted
        self.pool = pool
        D = 2 if layer.bidirectional else 1
        self.head = torch.nn.Linear(D * (layer.proj_size or layer.hidden_size), 2) if pool else None

    def forward(self, x, lengths):
        y, h = self.model(rnn_utils.pack_padded_sequence(x, lengths, self.batch_first,
                                                         enforce_sorted=self.enforce_sorted))
        y = rnn_utils.pad_packed_sequence(y, self.batch_first)[0]
        if self.pool is None:
            return y, h
        h = h[0] if isinstance(h, tuple) else h
        if self.pool == "h_n":
            return self.head(torch.cat([h[-2], h[-1]], 1) if self.model.bidirectional else h[-1])
        return self.head(y)


@pytest.mark.parametrize("name,batch_first,enforce_sorted,pool", [
    ("gru", True, False, None), ("lstm_bidir_l3", False, True, None), ("rnn_relu_l3", True, True, "h_n"),
    ("gru_bidir_l3", False, False, "h_n"), ("lstm_proj_bidir_l2", True, False, "h_n"),
    ("lstm_nobias_l2", False, False, "h_n")])
def test_packed_sequence_wrapper_takes_lengths(name, batch_first, enforce_sorted, pool):
    """forward(x, lengths) is probed with lengths; the model takes them as run's lengths=. (A head
    on every step of pad_packed_sequence's output writes head(0) past a length, where the engine
    writes zeros: refused saying so, below.)"""
    m = _Packed(_module(name, batch_first, torch.float32), batch_first, enforce_sorted, pool).eval()
    ours = rc.compile(from_torch(m, dtype="float32"), precision="f32")
    g = np.random.default_rng(16)
    x = g.standard_normal((5, 8, 5)).astype(np.float32)
    lengths = np.array([8, 6, 5, 2, 1]) if enforce_sorted else np.array([3, 8, 1, 6, 2])
    with torch.no_grad():
        ref = m(torch.as_tensor(x) if batch_first else torch.as_tensor(x).transpose(0, 1),
                torch.as_tensor(lengths))
    ref = ref[0] if isinstance(ref, tuple) else ref
    ref = (ref.transpose(0, 1) if pool != "h_n" and not batch_first else ref).numpy()
    _close(ours.run(x, lengths=lengths), ref, 1e-5)


class _TextClassifier(torch.nn.Module):
    """Token ids -> Embedding -> packed bidirectional LSTM -> cat(h_n[-2], h_n[-1]) -> Linear."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(30, 6, padding_idx=0)
        self.rnn = torch.nn.LSTM(6, 5, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = torch.nn.Linear(10, 3)

    def forward(self, ids, seq_lens):
        packed = rnn_utils.pack_padded_sequence(self.emb(ids), seq_lens.cpu(), batch_first=True,
                                                enforce_sorted=False)
        _, (h, _) = self.rnn(packed)
        return self.fc(torch.cat([h[-2], h[-1]], 1))


def test_text_classifier_with_lengths():
    torch.manual_seed(10)
    m = _TextClassifier().eval()
    ours = rc.compile(from_torch(m, dtype="float32"), precision="f32")
    g = np.random.default_rng(17)
    lengths = np.array([4, 9, 1, 6])
    ids = g.integers(1, 30, (4, 9))
    ids[np.arange(9) >= lengths[:, None]] = 0
    with torch.no_grad():
        ref = m(torch.as_tensor(ids), torch.as_tensor(lengths)).numpy()
    _close(ours.run(ids, lengths=lengths), ref, 1e-5)


class _PackedArgs(_Packed):
    """The same with forward(x, *args), the lengths last (as PyTorch's ONNX tests write it)."""

    def forward(self, x, *args):
        return super().forward(x, args[-1])


class _WithState(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.model = layer

    def forward(self, x, hx):
        return self.model(x, hx)[0]


class _WithInput(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.model = layer

    def forward(self, x, extra):
        return self.model(x, extra)[0]


def test_wrapper_needing_more_than_x_is_refused_with_what_to_do():
    m = _WithInput(_module("gru", True))
    with pytest.raises(ValueError, match=r"_WithInput\.forward\(x, extra\) needs the argument 'extra' "
                                         r"besides the input.*expected forward\(x\) or forward\(x, "
                                         r"lengths\), received forward\(x, extra\)\): import the recurrent "
                                         r"layer itself \(rc\.io\.from_torch\(module\.model\)\)"):
        from_torch(m)
    # a second argument named as a state (hx, hidden, h0, state) is run as None: a zero initial state
    m = _WithState(_module("gru", True)).double()
    model = from_torch(m)
    assert model.torch_zero_state == "hx"
    x = np.random.default_rng(0).standard_normal((3, 6, m.model.input_size))
    with torch.no_grad():
        want = m(torch.as_tensor(x), None).numpy()
    y = model.forward(x)
    np.testing.assert_allclose(y[0] if isinstance(y, tuple) else y, want, rtol=0, atol=1e-12)
    m = _Packed(_module("gru", True, torch.float32), True, pool="steps").eval()
    with pytest.raises(ValueError, match=r"_Packed\.forward's output past each sequence's length is not "
                                         r"zero .* the valid steps match: expected zeros past the lengths, "
                                         r"received up to [0-9.]+"):
        from_torch(m)
    m = _PackedArgs(_module("lstm", False), False)
    with pytest.raises(ValueError, match=r"_PackedArgs\.forward\(x\) on a random batch x of shape "
                                         r"\(5, 3, 5\) raised IndexError"):
        from_torch(m)


# -- ONNX: torch.onnx.export (classic, opset 17) then from_onnx, against onnxruntime -----------------
ONNX_CASES = {
    # name: (config, batch_first, h0 as an input, lengths as an input (pack_padded_sequence))
    "lstm_bidir_l3_tm": ("lstm_bidir_l3", False, False, False),
    "gru_l2_h0_bf": ("gru_l2_dropout", True, True, False),
    "rnn_relu_l3_tm_h0": ("rnn_relu_l3", False, True, False),
    "rnn_bidir_nobias_bf": ("rnn_tanh_bidir_l2_nobias", True, False, False),
    "lstm_nobias_h0_bf": ("lstm_nobias_l2", True, True, False),
    "gru_packed_bf": ("gru", True, False, True),
    "lstm_bidir_l3_packed_h0_tm": ("lstm_bidir_l3", False, True, True),
    "rnn_relu_packed_h0_bf": ("rnn_relu_l3", True, True, True),
}


class _Outputs(torch.nn.Module):
    """The layer, returning its output and states as separate tensors (the ONNX outputs); with
    ``packed``, forward(x, *hx, lengths) packs x (lengths sorted, PyTorch's default) as PyTorch's
    ONNX tests do."""

    def __init__(self, layer, packed=False):
        super().__init__()
        self.layer = layer
        self.packed = packed

    def forward(self, x, *rest):
        hx = rest[:-1] if self.packed else rest
        if self.packed:
            x = rnn_utils.pack_padded_sequence(x, rest[-1], self.layer.batch_first)
        y, h = self.layer(x, (hx if len(hx) == 2 else hx[0]) if hx else None)
        if self.packed:
            y = rnn_utils.pad_packed_sequence(y, self.layer.batch_first)[0]
        return (y, *h) if isinstance(h, tuple) else (y, h)


def _export(m, args, names, outs):
    import warnings

    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, tuple(map(torch.as_tensor, args)), f, dynamo=False, opset_version=17,
                          input_names=names, output_names=outs)
    return f.getvalue()


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case", list(ONNX_CASES))
def test_onnx_export_matches_onnxruntime(case):
    import onnx
    import onnxruntime as ort

    name, batch_first, with_h0, packed = ONNX_CASES[case]
    m = _module(name, batch_first, torch.float32)
    g = np.random.default_rng(11)
    B, T = 4, 7
    x = g.standard_normal((B, T, 5)).astype(np.float32)
    xin = x if batch_first else x.transpose(1, 0, 2).copy()
    h0 = [a.astype(np.float32) for a in _h0(m, B, g)] if with_h0 else []
    lengths = [np.array([7, 6, 3, 1])] if packed else []
    names = ["x"] + ["h0", "c0"][:len(h0)] + ["lengths"][:len(lengths)]
    outs = ["y", "h_n", "c_n"][:2 + (m.mode == "LSTM")]
    data = _export(_Outputs(m, packed), [xin, *h0, *lengths], names, outs)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    model = from_onnx(onnx.load_from_string(data), dtype="float32")
    eng = rc.compile(model, precision="f32")
    st0 = None
    if with_h0:
        _, template = eng.run(x[:, :1], return_state=True)
        st0 = _engine_state(template, h0)
    # the graph reads any lengths (ONNX sequence_lens), not only the sorted ones it was traced with
    for run_lengths in (lengths[0], np.array([2, 7, 5, 1])) if packed else (None,):
        feeds = dict(zip(names, [xin, *h0, *([run_lengths] if packed else [])], strict=True))
        ref = sess.run(outs, feeds)
        y_ref = ref[0] if batch_first else ref[0].transpose(1, 0, 2)
        y, st = eng.run(x, lengths=run_lengths, state=st0, return_state=True)
        _close(y, y_ref, 1e-5)
        for a, b in zip(_flat_state(st), ref[1:], strict=True):
            _close(a, b, 1e-5)


def test_onnx_per_step_head_after_sequence_lens_is_the_graphs():
    """A per-step Linear after pad_packed_sequence: ONNX writes its bias past a length, the engine
    would write zeros. The chain import (what rc.compile runs) refuses it saying so; the default
    import is the whole graph, which gives onnxruntime's numbers."""
    import onnx
    import onnxruntime as ort

    m = _Packed(_module("gru", True, torch.float32), True, enforce_sorted=True, pool="steps").eval()
    x = np.random.default_rng(18).standard_normal((4, 7, 5)).astype(np.float32)
    data = _export(m, [x, np.array([7, 6, 3, 1])], ["x", "lengths"], ["out"])
    with pytest.raises(ValueError, match=r"the recurrent nodes read sequence_lens 'lengths', and after them "
                                         r"a Linear with bias \(up to [0-9.]+\) runs on every step: past a "
                                         r"sequence's length ONNX writes its value of zeros there, "
                                         r"rnncore zeros"):
        from_onnx(onnx.load_from_string(data), dtype="float32", graph=False)
    graph = from_onnx(onnx.load_from_string(data), dtype="float32")
    feeds = {"x": x, "lengths": np.array([2, 7, 5, 1])}
    ref = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(["out"], feeds)[0]
    _close(graph.run(feeds)["out"], ref, 1e-5)


_DYNAMO = """
import io, sys, numpy as np, torch, onnx, onnxruntime as ort
import rnncore as rc
from rnncore.io.onnx_import import from_onnx
torch.manual_seed(0)
kind, bidir = sys.argv[1], sys.argv[2] == "1"
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = getattr(torch.nn, kind)(5, 6, num_layers=2, batch_first=True, bidirectional=bidir)
        self.fc = torch.nn.Linear(12 if bidir else 6, 3)
    def forward(self, x):
        return self.fc(self.rnn(x)[0])
m = M().eval()
x = np.random.default_rng(12).standard_normal((3, 8, 5)).astype(np.float32)
prog = torch.onnx.export(m, (torch.as_tensor(x),), dynamo=True, opset_version=18,
                         input_names=["x"], output_names=["y"])
data = prog.model_proto.SerializeToString()
ref = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(["y"], {"x": x})[0]
with torch.no_grad():
    assert np.abs(ref - m(torch.as_tensor(x)).numpy()).max() < 1e-5
y = rc.compile(from_onnx(onnx.load_from_string(data), dtype="float32"), precision="f32").run(x)
print(float(np.abs(y - ref).max() / max(1.0, np.abs(ref).max())))
"""


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("kind,bidir", [("GRU", "1"), ("LSTM", "0")])
def test_onnx_dynamo_export_in_a_fresh_process(kind, bidir):
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(_DYNAMO), kind, bidir], capture_output=True,
                       text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert float(r.stdout.strip().splitlines()[-1]) < 1e-5
