"""Long sequences: ``run`` in chunks of steps, its memory bound, threads and a 10^6-step stream.

``rnc_run`` processes the time axis in chunks (docs/c-api.md, "Running": 128 steps below 4
sequences, 4096 // B steps from 4 on), carrying the state across chunks; the backward direction
of a bidirectional layer runs its chunks from the end. The chunk size must change no bit, so the
cases below put T and the lengths just below, at and above multiples of the chunk and compare
with paths that do not chunk the same way:

* the step path (``Stream.step``, one step at a time, batch 1 per sequence), bit for bit;
* a bidirectional layer against two unidirectional models with its forward and its reverse
  weights, stepped forward over each sequence and over each sequence reversed, bit for bit;
* ``run`` on pieces of the sequence with the state carried, bit for bit;
* every ISA path against the generic one (q8: bit for bit);
* the NumPy references (float64 for f32; the quantised reference for q8), within the
  tolerances of tests/test_engine.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import tracemalloc

import numpy as np
import pytest
from test_engine import _f32_weights, _make

import rnncore as rc
from rnncore import _engine
from rnncore import quant as Q
from rnncore.nn.layers import Embedding, Linear, Sequential

F32 = np.float32
F32_TOL = 5e-5  # as tests/test_engine.py (contractive cells: errors do not grow with T)
Q8_SEQ_TOL = 5e-3
CHUNK = 128  # rnc_run's steps per chunk below 4 sequences (model.c: RUN_CHUNK_STEPS)
ROWS = 4096  # rows per chunk from 4 sequences on (RUN_CHUNK_ROWS): 4096 // B steps

ISAS = [t["name"] for t in _engine.isa_table() if t["available"]]


def _h(state):
    return state[0] if isinstance(state, tuple) else state


def _flat_state(state) -> list:
    return list(state) if isinstance(state, tuple) else [state]


def _steps(eng, x: np.ndarray, lengths) -> tuple:
    """Each sequence alone, one step at a time (batch 1): outputs (zero past the length) and
    the final states stacked over the batch."""
    b, t = x.shape[:2]
    y = np.zeros((b, t, eng.output_size), F32)
    finals = []
    for k in range(b):
        s = eng.stream(1)
        for j in range(int(lengths[k])):
            y[k, j] = s.step(x[k:k + 1, j])[0]
        finals.append(_flat_state(s.state))
    state = [np.concatenate([f[i] for f in finals], axis=1) for i in range(len(finals[0]))]
    return y, state


def _chunk_lengths(t: int, b: int, rng, zero: bool = True) -> np.ndarray:
    """Lengths around the chunk boundaries below t (and t itself, and 0 if b > 3 and zero)."""
    c = CHUNK if b < 4 else max(1, ROWS // b)
    near = [n for k in range(1, t // c + 1) for n in (k * c - 1, k * c, k * c + 1) if 0 < n <= t]
    picks = [t] + list(rng.choice(near, size=min(len(near), b - 1), replace=False))
    if b > 3 and zero:
        picks[-1] = 0
    return np.array((picks + [t] * b)[:b])


# batches below 16 take the whole-sequence path (chunks of 128 steps, of 1024 // b steps from 9
# sequences on: 85 at 12), 16 and more the per-step one (4096 // b steps per chunk)
CASES = [(1, 127), (1, 128), (1, 129), (2, 256), (3, 257), (4, 1025), (5, 1639), (12, 300), (16, 300),
         (64, 129)]


@pytest.mark.parametrize("precision", ["f32", "q8"])
@pytest.mark.parametrize("kind", ["rnn_tanh", "gru", "gru_rb", "lstm"])
@pytest.mark.parametrize("b,t", CASES)
def test_run_across_chunk_boundaries_equals_the_steps_bitwise(kind, precision, b, t):
    m = _make(kind, 5, 11, 2, seed=b + t)
    eng = rc.compile(m, precision=precision)
    rng = np.random.default_rng(t)
    x = rng.standard_normal((b, t, 5)).astype(F32)
    lengths = _chunk_lengths(t, b, rng)
    y, st = eng.run(x, lengths, return_state=True)
    y_ref, st_ref = _steps(eng, x, lengths)
    np.testing.assert_array_equal(y, y_ref)
    for a, r in zip(_flat_state(st), st_ref, strict=True):
        np.testing.assert_array_equal(a, r)


def _direction_model(m, suffix: str, kind: str):
    """A unidirectional one-layer model with the weights of ``m``'s direction ``suffix``."""
    u = _make(kind, m.input_size, m.hidden_size)
    src = dict(m.named_parameters())
    for name, v in u.named_parameters():
        v[...] = src[name + suffix]
    return u


@pytest.mark.parametrize("precision", ["f32", "q8"])
@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("b,t", [(1, 128), (1, 300), (3, 257), (5, 1639)])
def test_bidirectional_run_equals_each_direction_stepped_bitwise(kind, precision, b, t):
    """The backward direction runs its chunks from the end: its half of the output is the
    reverse-weight model stepped over each sequence reversed (within its length)."""
    m = _make(kind, 4, 9, 1, bidir=True, seed=t)
    eng = rc.compile(m, precision=precision)
    fwd = rc.compile(_direction_model(m, "", kind), precision=precision)
    bwd = rc.compile(_direction_model(m, "_reverse", kind), precision=precision)
    rng = np.random.default_rng(b)
    x = rng.standard_normal((b, t, 4)).astype(F32)
    lengths = _chunk_lengths(t, b, rng)
    y, st = eng.run(x, lengths, return_state=True)
    y_f, st_f = _steps(fwd, x, lengths)
    xr = np.zeros_like(x)
    for k in range(b):
        xr[k, :lengths[k]] = x[k, :lengths[k]][::-1]
    y_b, st_b = _steps(bwd, xr, lengths)
    for k in range(b):
        y_b[k, :lengths[k]] = y_b[k, :lengths[k]][::-1].copy()
    np.testing.assert_array_equal(y[..., :9], y_f)
    np.testing.assert_array_equal(y[..., 9:], y_b)
    for a, f, r in zip(_flat_state(st), st_f, st_b, strict=True):  # (2, B, H): [forward, backward]
        np.testing.assert_array_equal(a[0], f[0])
        np.testing.assert_array_equal(a[1], r[0])


@pytest.mark.parametrize("precision", ["f32", "q8"])
@pytest.mark.parametrize("b", [1, 3, 6])
def test_run_on_pieces_with_the_state_carried_equals_one_run(precision, b):
    eng = rc.compile(_make("lstm", 6, 13, 2, seed=b), precision=precision)
    x = np.random.default_rng(b).standard_normal((b, 2 * CHUNK + 3, 6)).astype(F32)
    y, st = eng.run(x, return_state=True)
    for cuts in ([1], [CHUNK - 1], [CHUNK], [CHUNK + 1], [5, CHUNK + 7, 2 * CHUNK + 2]):
        s = eng.stream(b)
        edges = [0] + cuts + [x.shape[1]]
        parts = [s.run(x[:, lo:hi]) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        np.testing.assert_array_equal(np.concatenate(parts, axis=1), y)
        for a, r in zip(_flat_state(s.state), _flat_state(st), strict=True):
            np.testing.assert_array_equal(a, r)


@pytest.mark.parametrize("b,t", [(1, 300), (3, 257), (5, 1639)])
def test_long_run_q8_is_the_same_on_every_isa(b, t):
    model = Sequential(rc.nn.GRU(6, 21, num_layers=2, bidirectional=True, seed=3),
                       Linear(42, 5, seed=4))
    eng = rc.compile(model, precision="q8")
    rng = np.random.default_rng(t)
    x = rng.standard_normal((b, t, 6)).astype(F32)
    lengths = _chunk_lengths(t, b, rng)
    eng.set_isa("generic")
    want = eng.run(x, lengths, return_state=True)
    for isa in ISAS:
        eng.set_isa(isa)
        got = eng.run(x, lengths, return_state=True)
        np.testing.assert_array_equal(got[0], want[0], err_msg=isa)
        np.testing.assert_array_equal(got[1], want[1], err_msg=isa)


@pytest.mark.parametrize("precision", ["f32", "q8"])
@pytest.mark.parametrize("b,t", [(2, 257), (5, 820)])
def test_long_bidirectional_stack_equals_the_numpy_reference(precision, b, t):
    m = _make("lstm", 5, 10, 2, bidir=True, seed=7)
    eng = rc.compile(m, precision=precision)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((b, t, 5)).astype(F32)
    lengths = _chunk_lengths(t, b, rng, zero=False)  # the float reference takes no length 0
    y, st = eng.run(x, lengths, return_state=True)
    if precision == "f32":
        y_ref, st_ref = m.forward(x.astype(np.float64), lengths=lengths)
        np.testing.assert_allclose(y, y_ref, atol=F32_TOL, rtol=0)
        np.testing.assert_allclose(_h(st), _h(st_ref), atol=F32_TOL, rtol=0)
    else:
        y_q, _ = Q.q8_forward(eng.reference(), x, lengths)
        np.testing.assert_allclose(y, y_q, atol=Q8_SEQ_TOL, rtol=0)
    for k in range(b):
        assert np.all(y[k, lengths[k]:] == 0)


@pytest.mark.parametrize("precision", ["f32", "q8"])
@pytest.mark.parametrize("b,t", [(1, 300), (3, 129), (6, 683)])
def test_long_embedding_and_head_equal_the_reference_and_the_steps(precision, b, t):
    model = Sequential(Embedding(40, 8, seed=1), rc.nn.GRU(8, 12, num_layers=2, seed=2),
                       Linear(12, 4, seed=3))
    _f32_weights(model)
    eng = rc.compile(model, precision=precision)
    rng = np.random.default_rng(t)
    ids = rng.integers(0, 40, (b, t)).astype(np.int32)
    lengths = _chunk_lengths(t, b, rng, zero=False)
    y = eng.run(ids, lengths)
    y_steps, _ = _steps(eng, ids, lengths)
    np.testing.assert_array_equal(y, y_steps)
    if precision == "f32":
        ref = model.forward(ids, lengths=lengths)
        np.testing.assert_allclose(y, ref, atol=F32_TOL, rtol=0)
    else:
        y_q, _ = Q.q8_forward(eng.reference(), ids, lengths)
        np.testing.assert_allclose(y, y_q, atol=Q8_SEQ_TOL, rtol=0)


# ------------------------------------------------------------------------------------------
# memory: the scratch of a long run does not grow with T
# ------------------------------------------------------------------------------------------
MB = 1 << 20


def _run_peak(eng, x: np.ndarray) -> tuple:
    """Peak of the Python-side allocations (numpy data is traced: the output and the scratch
    rnc_run is given) during eng.run(x), above what was allocated before; and the output."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        y = eng.run(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before, y


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_long_run_allocates_the_output_and_a_few_mb(precision):
    # T = 2e5, H = 64, one sequence: the output is 51 MB; the scratch used to hold every step's
    # input projection and quantised input (GRU: 3 H floats + H bytes a step, 320 MB in all)
    eng = rc.compile(rc.nn.GRU(64, 64, seed=0), precision=precision)
    x = np.random.default_rng(0).standard_normal((1, 200_000, 64)).astype(F32)
    extra, y = _run_peak(eng, x)
    assert y.shape == (1, 200_000, 64) and np.isfinite(y).all()
    assert extra <= y.nbytes + 4 * MB, (extra, y.nbytes)


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_long_run_of_a_stack_allocates_its_sequences_and_a_few_mb(precision):
    # two bidirectional layers: layer 0's whole output (the input of layer 1, as wide as the
    # output) is kept, the projections are not
    eng = rc.compile(rc.nn.LSTM(16, 32, num_layers=2, bidirectional=True, seed=0), precision=precision)
    x = np.random.default_rng(0).standard_normal((2, 50_000, 16)).astype(F32)
    extra, y = _run_peak(eng, x)
    assert y.shape == (2, 50_000, 64)
    assert extra <= 2 * y.nbytes + 4 * MB, (extra, y.nbytes)


def test_long_run_with_a_head_and_ids_allocates_the_output_and_a_few_mb():
    # embedding -> GRU -> head: the embeddings are gathered per chunk, the head runs per chunk
    # of rows; only the GRU's output (its input) is a whole sequence
    model = Sequential(Embedding(100, 32, seed=1), rc.nn.GRU(32, 48, seed=2), Linear(48, 8, seed=3))
    eng = rc.compile(model, precision="q8")
    ids = np.random.default_rng(0).integers(0, 100, (1, 100_000)).astype(np.int32)
    extra, y = _run_peak(eng, ids)
    assert y.shape == (1, 100_000, 8)
    assert extra <= y.nbytes + 100_000 * 48 * 4 + 4 * MB, (extra, y.nbytes)


# ------------------------------------------------------------------------------------------
# concurrency: streams of one engine in parallel threads give the serial results
# ------------------------------------------------------------------------------------------
N_THREADS = 4


def _in_threads(work, n: int) -> list:
    results = [None] * n
    errors = []
    start = threading.Barrier(n)

    def worker(k):
        try:
            start.wait()
            results[k] = work(k)
        except BaseException as e:  # reported below, with the thread's index
            errors.append((k, e))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_threads_stepping_separate_streams_give_the_serial_results(precision):
    eng = rc.compile(_make("lstm", 12, 24, 2, seed=20), precision=precision)
    rng = np.random.default_rng(21)
    xs = [rng.standard_normal((300, 1 + k % 3, 12)).astype(F32) for k in range(N_THREADS)]

    def work(k):
        s = eng.stream(xs[k].shape[1])
        return np.stack([s.step(x).copy() for x in xs[k]]), _flat_state(s.state)

    serial = [work(k) for k in range(N_THREADS)]
    for _ in range(3):
        for got, want in zip(_in_threads(work, N_THREADS), serial, strict=True):
            np.testing.assert_array_equal(got[0], want[0])
            for a, r in zip(got[1], want[1], strict=True):
                np.testing.assert_array_equal(a, r)


@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_threads_running_separate_streams_give_the_serial_results(precision):
    # bidirectional stack + head, long enough for several chunks, lengths, batches 1..5
    model = Sequential(rc.nn.GRU(7, 16, num_layers=2, bidirectional=True, seed=22), Linear(32, 3, seed=23))
    eng = rc.compile(model, precision=precision)
    rng = np.random.default_rng(24)
    data = []
    for k in range(N_THREADS):
        b = 1 + 2 * k % 5
        x = rng.standard_normal((b, 300, 7)).astype(F32)
        data.append((x, _chunk_lengths(300, b, rng)))

    def work(k):
        x, lengths = data[k]
        return [eng.run(x, lengths, return_state=True) for _ in range(2)]

    serial = [work(k) for k in range(N_THREADS)]
    for got, want in zip(_in_threads(work, N_THREADS), serial, strict=True):
        for (y, st), (y0, st0) in zip(got, want, strict=True):
            np.testing.assert_array_equal(y, y0)
            np.testing.assert_array_equal(st, st0)


# ------------------------------------------------------------------------------------------
# a 10^6-step stream
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["f32", "q8"])
def test_million_step_stream_stays_finite_and_equals_one_run_and_runs_on_pieces(precision):
    # LSTM H = 8 (its cell state is the unbounded part), inputs with a slow drift so the state
    # keeps moving; three ways through the same 10^6 steps must agree bit for bit
    T, I = 1_000_000, 3
    eng = rc.compile(_make("lstm", I, 8, seed=30), precision=precision)
    rng = np.random.default_rng(31)
    x = (rng.standard_normal((1, T, I)) + np.sin(np.arange(T) / 5000.0)[None, :, None]).astype(F32)
    y, st = eng.run(x, return_state=True)
    assert np.isfinite(y).all() and all(np.isfinite(a).all() for a in _flat_state(st))
    assert y[0, -1000:].std() > 0.01  # still responding to its input at the end

    s = eng.stream(1)
    pieces = [s.run(x[:, lo:lo + 99_991]) for lo in range(0, T, 99_991)]  # not a chunk multiple
    np.testing.assert_array_equal(np.concatenate(pieces, axis=1), y)
    for a, r in zip(_flat_state(s.state), _flat_state(st), strict=True):
        np.testing.assert_array_equal(a, r)

    s = eng.stream(1)
    out = np.empty((1, 8), F32)
    step = s.step
    xs = x[0]
    ys = np.empty((T, 8), F32)
    for t in range(T):
        step(xs[t:t + 1], out=out)
        ys[t] = out[0]
    np.testing.assert_array_equal(ys, y[0])
    for a, r in zip(_flat_state(s.state), _flat_state(st), strict=True):
        np.testing.assert_array_equal(a, r)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="Linux /proc only")
def test_long_run_peak_rss_in_a_fresh_process():
    # the same bound seen by the OS: the peak resident set of a child process while it runs
    # T = 2e5 steps exceeds its resident set before by the output (51 MB) plus a few MB, not by
    # the projections. (VmHWM reset through clear_refs: ru_maxrss would carry this process's
    # peak over the fork and exec.)
    code = textwrap.dedent("""
        import numpy as np, rnncore as rc
        def status(key):
            with open("/proc/self/status") as f:
                return next(int(v.split()[0]) * 1024 for k, v in (ln.split(":", 1) for ln in f)
                            if k == key)
        eng = rc.compile(rc.nn.GRU(64, 64, seed=0), precision="q8")
        x = np.random.default_rng(0).standard_normal((1, 200_000, 64), dtype=np.float32)
        eng.run(x[:, :10])
        before = status("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
        y = eng.run(x)
        print(status("VmHWM") - before, y.nbytes)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    grew, out = map(int, r.stdout.split())
    assert out // 2 <= grew <= out + 8 * MB, (grew, out)  # the output is seen, nothing more
