"""The end of input of padded layers over time (docs/c-api.md, "Look-ahead": "Padding is not
input", ``rnc_run`` of whole sequences): the number of outputs ``run`` gives and ``step`` +
``flush`` give, for every small ``T`` and every padding the engine accepts, against PyTorch's
own layers (a sequence PyTorch refuses as shorter than a window, or empty, has no output) and
Keras' ``padding="same"``; a flush with nothing fed; records left without input by the records
before them; ``Stream.run`` on a stream in the middle of a sequence; chunked ``run`` calls as
PyTorch runs chunks (each call padded, h carried).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _helpers import randn32

import rnncore as rc

torch = pytest.importorskip("torch")
F = torch.nn.functional
nn = rc.nn
C = 2


def _layer(kind, k, s, d, left, right, ceil=False):
    """An rc.nn layer over time and PyTorch's function of the same padding (x (B, C, T))."""
    if kind == "conv":
        c = nn.Conv1d(C, C, k, stride=s, dilation=d, padding=(left, right), dtype="float32", seed=k + 7 * s)
        w, b = torch.from_numpy(c.params["weight"]), torch.from_numpy(c.params["bias"])
        return c, lambda x: F.conv1d(F.pad(x, (left, right)), w, b, stride=s, dilation=d)
    # ceil: PyTorch's own padding (left == right), and an average with it leaves the pad steps out
    # of its count (count_include_pad=True with padding and ceil_mode is refused by rc.compile)
    if kind == "max":
        p = nn.MaxPool1d(k, channels=C, stride=s, dilation=d, dtype="float32", ceil_mode=ceil,
                         padding=left if ceil else 0)
        ref = (lambda x: F.max_pool1d(x, k, s, left, d, ceil_mode=True)) if ceil else (
            lambda x: F.max_pool1d(F.pad(x, (left, right), value=-float("inf")), k, s, 0, d))
    else:   # average, count_include_pad=True but with ceil and padding (PyTorch's AvgPool1d: no dilation)
        p = nn.AvgPool1d(k, channels=C, stride=s, dtype="float32", ceil_mode=ceil,
                         padding=left if ceil else 0, count_include_pad=not (ceil and left))
        ref = (lambda x: F.avg_pool1d(x, k, s, left, True, not left)) if ceil else (
            lambda x: F.avg_pool1d(F.pad(x, (left, right)), k, s, 0))
    if not ceil:   # any (left, right) up to P, as ONNX pads may be (rc.nn checks PyTorch's k // 2)
        p.pad_left, p.pad_right = left, right
    return p, ref


def _torch_steps(refs, T):
    """PyTorch's output steps of the chain for T input steps; 0 where it refuses the input."""
    x = torch.ones(1, C, T)
    try:
        for f in refs:
            x = f(x)
    except RuntimeError:
        return 0
    return x.shape[2]


def _stream_steps(eng, X):
    """Every step of X, then flush: (outputs (B, n, O), outputs of the steps alone, the stream)."""
    st = eng.stream(batch=X.shape[0])
    outs = [o for o in (st.step(X[:, t]) for t in range(X.shape[1])) if o is not None]
    tail = st.flush()
    body = np.stack(outs, 1) if outs else np.zeros((X.shape[0], 0, tail.shape[2]), np.float32)
    return np.concatenate([body, tail], 1), len(outs), st


def _check_counts(pairs, Ts, seed=0):
    # the ReLU: a dilated max pooling's window over pad steps only gives -inf, as PyTorch, which the
    # GRU would make NaN (the engine's non-finite error); ReLU makes it 0, as in PyTorch
    eng = rc.compile(nn.Sequential(*[p[0] for p in pairs], nn.ReLU(), nn.GRU(C, 3, seed=seed)))
    for T in Ts:
        want = _torch_steps([p[1] for p in pairs], T) if T else 0
        X = randn32((1, T, C), seed=T)
        Y = eng.run(X)
        got, _, st = _stream_steps(eng, X)
        assert (Y.shape[1], got.shape[1], eng.stream(1).out_steps(T)) == (want,) * 3, (T, want)
        np.testing.assert_array_equal(got, Y)
        assert st.flush().shape == (1, 0, 3)   # a second flush: nothing more


def _convs():
    for k, d in ((2, 1), (3, 1), (4, 1), (2, 2), (3, 2)):
        P = d * (k - 1)
        for s, left, right in itertools.product((1, 2, 3), range(P + 1), range(P + 1)):
            yield ("conv", k, s, d, left, right)


def _pools():
    kinds = (("max", 2, 1), ("max", 3, 1), ("max", 2, 2), ("max", 3, 2), ("avg", 2, 1), ("avg", 3, 1))
    for kind, k, d in kinds:
        P = d * (k - 1)
        for s in (1, 2, 3):
            for left, right in itertools.product(range(P + 1), range(P + 1)):
                yield (kind, k, s, d, left, right)
            for pad in range(k // 2 + 1) if s > 1 else ():   # ceil_mode (at stride 1 it changes nothing)
                yield (kind, k, s, d, pad, pad, True)


@pytest.mark.parametrize("cfg", list(_convs()), ids=str)
def test_conv_output_counts_are_pytorchs_for_every_small_T(cfg):
    """Conv1d over time with any (left, right) in 0..P, stride, dilation: T = 0 .. P + 2 stride + 2
    (every T where the padded input is shorter than a window, and a few beyond)."""
    k, s, d = cfg[1:4]
    _check_counts([_layer(*cfg)], range(d * (k - 1) + 2 * s + 3))


@pytest.mark.parametrize("cfg", list(_pools()), ids=str)
def test_pooling_output_counts_are_pytorchs_for_every_small_T(cfg):
    k, s, d = cfg[1:4]
    _check_counts([_layer(*cfg)], range(d * (k - 1) + 2 * s + 3))


# a record that leaves the next one without input for small T (no output: PyTorch refuses), then
# one whose pad steps alone would make outputs (left + right > P)
FIRST = [("max", 3, 1, 1, 0, 0), ("max", 2, 2, 1, 0, 0), ("avg", 3, 2, 1, 0, 0, True),
         ("conv", 2, 3, 1, 0, 0), ("conv", 3, 1, 1, 2, 0), ("conv", 3, 2, 1, 1, 1)]
SECOND = [("conv", 2, 1, 1, 1, 1), ("conv", 3, 1, 1, 2, 2), ("conv", 3, 2, 2, 4, 3), ("max", 3, 1, 1, 2, 2),
          ("avg", 3, 1, 1, 2, 1), ("max", 2, 2, 1, 0, 0, True)]


@pytest.mark.parametrize("first, second", list(itertools.product(FIRST, SECOND)), ids=str)
def test_a_record_left_without_input_gives_no_output(first, second):
    _check_counts([_layer(*first), _layer(*second)], range(9))


def test_the_values_of_short_sequences_are_pytorchs():
    """Conv1d(k=2, padding=1) > MaxPool1d(3, 1, padding (2, 2)) > Conv1d(k=3, padding=2) > GRU,
    T = 1 .. 5 (where the windows hold mostly padding) against PyTorch, per row with lengths."""
    torch.manual_seed(0)
    specs = [("conv", 2, 1, 1, 1, 1), ("max", 3, 1, 1, 2, 2), ("conv", 3, 1, 1, 2, 2)]
    pairs = [_layer(*s) for s in specs]
    tg = torch.nn.GRU(C, 4, batch_first=True)
    g = nn.GRU(C, 4, dtype="float32")
    g.load_state_dict(tg.state_dict())
    eng = rc.compile(nn.Sequential(*[p[0] for p in pairs], g))
    X = randn32((5, 5, C), seed=3)
    L = np.array([1, 2, 3, 4, 5])
    Y = eng.run(X, lengths=L)
    for b, n in enumerate(L):
        with torch.no_grad():
            u = torch.from_numpy(X[b:b + 1, :n]).transpose(1, 2)
            for p in pairs:
                u = p[1](u)
            want = tg(u.transpose(1, 2))[0].numpy()[0]
        assert want.shape[0] == n + 1 + 2 + 2
        np.testing.assert_allclose(Y[b, :want.shape[0]], want, rtol=0, atol=2e-6)
        assert not Y[b, want.shape[0]:].any()
        got, _, _ = _stream_steps(eng, X[b:b + 1, :n])
        np.testing.assert_array_equal(got[0], Y[b, :want.shape[0]])


def _over_padded(seed=0):
    return rc.compile(nn.Sequential(nn.Conv1d(3, 4, 3, padding=2, seed=seed), nn.GRU(4, 5, seed=seed + 1)))


def test_a_flush_with_nothing_fed_gives_nothing():
    """Conv1d(k=3, padding=2) alone would give 2 outputs of padding only at a flush: no input since
    the stream's start, reset() or the last flush gives none (PyTorch refuses an empty input)."""
    eng = _over_padded()
    assert eng.run(np.zeros((2, 0, 3), np.float32)).shape == (2, 0, 5)
    st = eng.stream(2)
    assert st.flush_steps == 2 and st.lookahead == 0
    assert st.flush().shape == (2, 0, 5)
    X = randn32((2, 4, 3))
    for t in range(4):
        st.step(X[:, t])
    assert st.flush().shape == (2, 2, 5)
    assert st.flush().shape == (2, 0, 5)   # the second flush: the sequence has ended
    st.step(X[:, 0])
    st.reset()
    assert st.flush().shape == (2, 0, 5)
    rc_state = eng.stream(2).state
    assert rc_state["real_steps"].shape == (2, 1)   # the over-padded conv counts its real steps


def test_a_restored_state_carries_the_real_steps():
    eng = _over_padded(seed=3)
    X = randn32((1, 6, 3), seed=1)
    Y = eng.run(X)
    st = eng.stream(1)
    first = [st.step(X[:, t]) for t in range(3)]
    saved = st.state
    np.testing.assert_array_equal(saved["real_steps"], [[2]])   # up to P = 2
    other = eng.stream(1)
    other.state = saved
    rest = [other.step(X[:, t]) for t in range(3, 6)]
    got = np.concatenate([np.stack(first + rest, 1), other.flush()], 1)
    np.testing.assert_array_equal(got, Y)
    fresh = eng.stream(1)
    fresh.state = dict(saved, real_steps=np.zeros((1, 1), np.int64))   # as if nothing was fed
    assert fresh.flush().shape == (1, 0, 5)


def test_rows_fed_differently_cannot_flush_together():
    eng = _over_padded(seed=5)
    st = eng.stream(2)
    st.step(randn32((2, 3)))
    s = st.state
    s["real_steps"] = np.array([[1], [0]])
    st.state = s
    with pytest.raises(ValueError, match="flush: the countdowns or counters"):
        st.flush()


def test_stream_run_mid_sequence_is_refused_naming_the_rows():
    """Stream.run takes whole sequences on a model with right padding (as PyTorch and ONNX Runtime
    take each call): a stream with steps not yet flushed raises instead of cutting that sequence."""
    eng = _over_padded(seed=7)
    X = randn32((2, 5, 3), seed=2)
    st = eng.stream(2)
    st.step(X[:, 0])
    with pytest.raises(ValueError, match=r"run: stream row\(s\) \[0, 1\] are in the middle of a sequence"):
        st.run(X)
    with pytest.raises(ValueError, match=r"row\(s\) \[1\]"):
        st.run(X, lengths=np.array([0, 5]))
    assert not st.run(X, lengths=np.array([0, 0])).any()   # runs nothing (zero rows), leaves them open
    with pytest.raises(ValueError, match="middle of a sequence"):
        eng.run(X, state=st.state)
    assert st.flush().shape == (2, 2, 5)
    h = st.state["recurrent"]
    Y = st.run(X)   # after the flush: whole sequences again, h carried
    fresh = eng.stream(2)
    fresh.state = h
    np.testing.assert_array_equal(Y, fresh.run(X))
    causal = rc.compile(nn.Sequential(nn.Conv1d(3, 4, 3, padding="causal", seed=1), nn.GRU(4, 5, seed=2)))
    cs = causal.stream(2)
    cs.step(X[:, 0])
    assert cs.run(X[:, 1:]).shape == (2, 4, 5)   # causal: run continues the stream, as before


def test_chunked_runs_are_pytorchs_chunked_calls():
    """run(X[:, :n]) then run(X[:, n:]) on a padded model is what PyTorch gives for two calls with
    h carried: each chunk padded at both ends (the documented rule), not one run over X."""
    torch.manual_seed(2)
    tc = torch.nn.Conv1d(3, 4, 3, padding=1)
    tg = torch.nn.GRU(4, 5, batch_first=True)
    c = nn.Conv1d(3, 4, 3, padding=1, dtype="float32")
    c.load_state_dict({"weight": tc.weight.detach().numpy(), "bias": tc.bias.detach().numpy()})
    g = nn.GRU(4, 5, dtype="float32")
    g.load_state_dict(tg.state_dict())
    eng = rc.compile(nn.Sequential(c, g))
    X = randn32((2, 11, 3), seed=9)
    st = eng.stream(2)
    got = np.concatenate([st.run(X[:, :6]), st.run(X[:, 6:])], 1)
    with torch.no_grad():
        h = None
        want = []
        for part in (X[:, :6], X[:, 6:]):
            y, h = tg(tc(torch.from_numpy(part).transpose(1, 2)).transpose(1, 2), h)
            want.append(y.numpy())
    np.testing.assert_allclose(got, np.concatenate(want, 1), rtol=0, atol=2e-6)
    assert not np.allclose(got, eng.run(X), atol=1e-3)   # not one sequence: the cut is padded


def test_numpy_layers_refuse_an_empty_sequence_as_pytorch():
    with pytest.raises(ValueError, match="0 time steps"):
        nn.Conv1d(3, 4, 3, padding=2).forward(np.zeros((1, 0, 3)))
    with pytest.raises(RuntimeError):
        torch.nn.Conv1d(3, 4, 3, padding=2)(torch.zeros(1, 3, 0))
    assert rc.nn.conv.conv_output_length(0, 3, 1, 1, 2, 2) == 0


def test_keras_same_padding_counts_for_every_small_T():
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    kl = keras.layers
    layers = [kl.Conv1D(C, 4, padding="same"), kl.Conv1D(C, 3, padding="same", dilation_rate=2),
              kl.MaxPooling1D(2, padding="same"), kl.MaxPooling1D(3, strides=1, padding="same"),
              kl.AveragePooling1D(3, strides=1, padding="same"), kl.AveragePooling1D(2, padding="same")]
    for layer in layers:
        km = keras.Sequential([keras.Input((None, C)), layer, keras.layers.GRU(3, return_sequences=True)])
        eng = rc.compile(rc.io.from_keras(km))
        for T in range(1, 7):
            X = randn32((1, T, C), seed=T)
            want = np.asarray(km.predict(X, verbose=0))
            Y = eng.run(X)
            assert Y.shape == want.shape, (layer.name, T)
            np.testing.assert_allclose(Y, want, rtol=0, atol=1e-5)
            got, _, _ = _stream_steps(eng, X)
            np.testing.assert_array_equal(got, Y)
        assert eng.stream(1).flush().shape == (1, 0, 3)
