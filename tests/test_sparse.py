"""Block-sparse q8 weights (docs/rnc-format.md, "Block-sparse q8 weights"; issue 17 item 1).

* A model whose weights are zero in whole blocks, compiled with ``sparse=`` (its matrices stored
  as spq8 tensors, run by the ``*_sparse`` kernel rows) gives outputs and final states **bit for
  bit** equal to the same model compiled dense, on every ISA this CPU runs: steps at several
  batch sizes, whole-sequence runs with lengths (both run modes: the projection given below 4
  sequences, per step from 4), stacked and bidirectional layers, 8- and 16-row blocks. The dense
  q8 path is held against the NumPy q8 reference by test_kernels_property.py / test_engine.py.
* The Python reader turns a sparse file back into exactly the int8 weights of the dense file.
* Every refusal of the loader's sparse checks: the C loader and the Python reader refuse the same
  mutated file with the same text.
* Training: ``BlockPruning`` reaches its target block density per gate, keeps the recurrent
  diagonal when asked, and no optimiser regrows a pruned weight.
* The gate-shared layout (layer flags SHARED_IH / SHARED_HH): written exactly when every gate of
  a GRU / LSTM matrix has the same zero blocks (checked, not assumed), run by the ``*_shared``
  rows (an ISA without them by its parent's, down to generic, through the kernel table), bit for
  bit equal to the dense engine and to the NumPy q8 reference of the file's stored weights; its
  refusals agree between C and Python.
"""

from __future__ import annotations

import pathlib
import struct
import sys

import numpy as np
import pytest
from _helpers import fix_crc
from engine_report import record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnncore as rc
from rnncore import _engine
from rnncore.io.rnc import LAYOUT, block_density, pack_q8, read_rnc, unpack_q8
from rnncore.quant.reference import qmodel_from_rnc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "csrc" / "tests"))
import gen_vectors  # noqa: E402

AVAILABLE = rc.isa()["available"]


def _prune_blocks(m, density, bh, rng):
    """Zero whole bh x 4 blocks of every weight matrix (in the writer's gate-padded layout),
    keeping about ``density`` of them."""
    for _name, v in m.named_parameters():
        if v.ndim != 2:
            continue
        gh, k = v.shape
        g = 4 if "lstm" in type(m).__name__.lower() else 3 if "gru" in type(m).__name__.lower() else 1
        h = gh // g
        hp, kp = -(-h // 16) * 16, -(-k // 4) * 4
        w = np.zeros((g, hp, kp), v.dtype)
        w[:, :h, :k] = v.reshape(g, h, k)
        keep = rng.random((g, hp // bh, kp // 4)) < density
        w *= np.repeat(np.repeat(keep, bh, axis=1), 4, axis=2)
        v[...] = w[:, :h, :k].reshape(gh, k)
    return m


def _pruned(kind, sizes, density, bh, seed, bidirectional=False):
    rng = np.random.default_rng(seed)
    layers = []
    feat = sizes[0]
    for h in sizes[1:]:
        kw = dict(seed=seed, bidirectional=bidirectional)
        lay = (rc.nn.LSTM(feat, h, **kw) if kind == "lstm" else rc.nn.GRU(feat, h, **kw) if kind == "gru"
               else rc.nn.RNN(feat, h, nonlinearity=kind[4:], **kw))
        _prune_blocks(lay, density, bh, rng)
        layers.append(lay)
        feat = h * (2 if bidirectional else 1)
    return layers[0] if len(layers) == 1 else rc.nn.Sequential(*layers)


def _flat(state):
    if isinstance(state, (list, tuple)):
        return [a for s in state for a in _flat(s)]
    return [np.asarray(state)]


def _sparse_equals_dense_on_batches(dense, sp, isa, rng, n_in, op, proj_op, bidir):
    """Batches of 1, 2, 5 and 17 sequences of 11 random steps (``n_in`` inputs; lengths random from
    2 sequences on): ``sp`` gives ``dense``'s outputs and final state bit for bit, and for a
    one-directional model its first 4 stream steps too. The kernel-table rows ``sp`` plans are
    recorded for the report: its cell row ``op``, and (``proj_op``) its run's projection row below
    4 sequences."""
    for b in (1, 2, 5, 17):
        X = (rng.standard_normal((b, 11, n_in)) * 2).astype(np.float32)
        lengths = rng.integers(0, 12, b) if b > 1 else None
        y0, s0 = dense.run(X, lengths, return_state=True)
        y1, s1 = sp.run(X, lengths, return_state=True)
        assert np.array_equal(y0, y1), (isa, b)
        for a0, a1 in zip(_flat(s0), _flat(s1), strict=True):
            assert np.array_equal(a0, a1), (isa, b)
        record(sp._model.plan_row(0, op, b, "x"), isa)
        if b < 4 and proj_op:
            record(sp._model.plan_row(-1, proj_op, b * 11), isa)
        if not bidir:
            t0, t1 = dense.stream(b), sp.stream(b)
            for t in range(4):
                assert np.array_equal(t0.step(X[:, t].copy()), t1.step(X[:, t].copy())), (isa, b, t)


CASES = [("gru", [7, 19], 16, False), ("lstm", [5, 33], 8, False), ("rnn_tanh", [9, 20], 16, False),
         ("rnn_relu", [6, 17], 8, False), ("gru", [4, 21, 18], 8, False), ("lstm", [6, 13], 16, True),
         ("gru", [37, 45], 16, True)]


@pytest.mark.parametrize("kind,sizes,bh,bidir", CASES)
def test_sparse_engine_bit_identical_to_dense_on_every_isa(kind, sizes, bh, bidir):
    m = _pruned(kind, sizes, 0.3, bh, seed=len(sizes) * 7 + bh)
    dense = rc.compile(m, "q8")
    sp = rc.compile(m, "q8", sparse={"max_density": 0.9, "block_rows": bh})
    assert len(sp.data) < len(dense.data)
    op = ("lstm" if kind == "lstm" else kind[:3]) + "_step_sparse"
    rng = np.random.default_rng(1)
    for isa in AVAILABLE:
        dense.set_isa(isa)
        sp.set_isa(isa)
        assert sp._model.plan_row(0, op, 1, "x").endswith("_sparse_" + (isa if isa in (
            "generic", "avx2", "avx512vnni") else {"avx512": "avx2", "avxvnni": "avx2", "amx": "avx512vnni",
                                                    "neon": "generic", "neondot": "generic"}[isa]))
        _sparse_equals_dense_on_batches(dense, sp, isa, rng, sizes[0], op, "spgemv", bidir)


def test_reader_gives_the_dense_weights_back():
    m = _pruned("lstm", [10, 24], 0.4, 16, seed=3)
    d0 = read_rnc(rc.compile(m, "q8").data)
    d1 = read_rnc(rc.compile(m, "q8", sparse=True).data)
    for a, b in zip(d0["layers"], d1["layers"], strict=True):
        for key in ("qweights", "scales"):
            for n in a[key]:
                assert np.array_equal(a[key][n], b[key][n]), (key, n)


def test_threshold_and_dense_fallbacks():
    m = rc.nn.GRU(8, 16, seed=0)  # dense weights: no matrix passes the threshold
    assert rc.compile(m, "q8", sparse=True).data == rc.compile(m, "q8").data
    rb = _pruned("gru", [8, 16], 0.2, 16, seed=1)
    rb2 = rc.nn.GRU(8, 16, reset_after=False, seed=1)
    for (_n, v), (_, v2) in zip(rb.named_parameters(), rb2.named_parameters(), strict=True):
        v2[...] = v
    # GRU reset_after=False stays dense (its r*h product takes a row range of W_hh)
    assert rc.compile(rb2, "q8", sparse=True).data == rc.compile(rb2, "q8").data
    with pytest.raises(ValueError, match="sparse"):
        rc.compile(rb, "f32", sparse=True)
    with pytest.raises(ValueError, match="block_rows"):
        rc.compile(rb, "q8", sparse={"block_rows": 4})
    with pytest.raises(ValueError, match="max_density"):
        rc.compile(rb, "q8", sparse={"max_density": 2})
    # only W_hh pruned: W_ih stays dense, W_hh sparse (layer flag 8 only)
    m3 = rc.nn.LSTM(8, 32, seed=2)
    _prune_blocks(m3, 0.25, 16, np.random.default_rng(0))
    w_ih = dict(m3.named_parameters())["weight_ih_l0"]
    w_ih[...] = np.random.default_rng(1).standard_normal(w_ih.shape)
    data = rc.compile(m3, "q8", sparse=True).data
    at = LAYOUT["hdr2"].size + LAYOUT["rec_recurrent"].fields["flags"].offset
    flags = struct.unpack_from("<I", data, at)[0]
    assert flags & 12 == 8
    X = np.random.default_rng(2).standard_normal((2, 6, 8)).astype(np.float32)
    assert np.array_equal(rc.compile(m3, "q8").run(X), rc.load(data).run(X))


def test_block_density_and_pack_roundtrip():
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (32, 12)).astype(np.int8)
    w[:16, 4:8] = 0
    w[16:, :] = 0
    assert block_density(w, 16) == pytest.approx(2 / 6)
    assert block_density(w, 8) == pytest.approx(4 / 12)
    assert np.array_equal(unpack_q8(pack_q8(w), 32, 12), w)


# ------------------------------------------------------------------------------------------
# the loader's refusals, C and Python alike
def _verdicts(data):
    try:
        read_rnc(data)
        py = None
    except ValueError as e:
        py = str(e)
    try:
        _engine.Model(data)
        c = None
    except ValueError as e:
        c = str(e)
    return py, c


def _sparse_file():
    m = _pruned("gru", [6, 18], 0.4, 8, seed=5)  # K = 6: the last input group is padded
    data = rc.compile(m, "q8", sparse={"max_density": 0.95, "block_rows": 8}).data
    rec = LAYOUT["hdr2"].size
    cw = rec + 48
    off, n = struct.unpack_from("<II", data, cw + LAYOUT["cellw"].fields["w_ih"].offset)
    return bytearray(data), off, n


def _mutations():
    data, off, n = _sparse_file()
    rb = struct.unpack_from("<I", data, off + 4)[0]
    nnz = struct.unpack_from("<I", data, off + 12)[0]
    rows = rb * 8
    sums = off + 16 + 4 * (rb + 1)
    cols = sums + 4 * rows
    blocks = off + -(-(cols - off + 2 * nnz) // 64) * 64
    yield "block_rows 4", off, struct.pack("<I", 4)
    yield "row_blocks - 1", off + 4, struct.pack("<I", rb - 1)
    yield "groups + 1", off + 8, struct.pack("<I", 3)
    yield "nnz + 1", off + 12, struct.pack("<I", nnz + 1)
    yield "nnz huge", off + 12, struct.pack("<I", 10**6)
    yield "rowptr[0] = 1", off + 16, struct.pack("<I", 1)
    yield "rowptr[1] = 9", off + 20, struct.pack("<I", 9)
    yield "rowptr decreasing", off + 24, struct.pack("<I", 0)
    yield "sums[0] + 1", sums, struct.pack("<i", struct.unpack_from("<i", data, sums)[0] + 1)
    yield "col out of range", cols, struct.pack("<H", 2)
    yield "col repeated", cols + 2, data[cols:cols + 2]
    yield "weight -128", blocks, b"\x80"
    yield "padding weight", blocks + 2, b"\x05"  # inputs 6, 7 of group 1 are padding
    yield "layer flag on GRU reset_after=0", LAYOUT["hdr2"].size + 12, struct.pack("<I", 4)


@pytest.mark.parametrize("what,at,new", list(_mutations()), ids=lambda v: v if isinstance(v, str) else "")
def test_sparse_refusals_agree_between_c_and_python(what, at, new):
    data, _, _ = _sparse_file()
    data[at:at + len(new)] = new
    py, c = _verdicts(fix_crc(data))
    assert (py is None) == (c is None), (what, py, c)
    assert py is not None, what
    assert py in c, (what, py, c)


# ------------------------------------------------------------------------------------------
# the gate-shared layout
def _pruned_shared(kind, sizes, density, seed, bidirectional=False, which=("ih", "hh")):
    """Layers whose ``which`` matrices keep the same 16 x 4 blocks in every gate (one mask drawn
    per matrix, its first block dropped), the others dense."""
    rng = np.random.default_rng(seed)
    layers, feat = [], sizes[0]
    for h in sizes[1:]:
        lay = (rc.nn.LSTM if kind == "lstm" else rc.nn.GRU)(feat, h, seed=seed, bidirectional=bidirectional)
        g = 4 if kind == "lstm" else 3
        for name, v in lay.named_parameters():
            if v.ndim != 2 or not any(f"_{w}_" in name for w in which):
                continue
            k = v.shape[1]
            hp, kp = -(-h // 16) * 16, -(-k // 4) * 4
            w = np.zeros((g, hp, kp), v.dtype)
            w[:, :h, :k] = v.reshape(g, h, k)
            keep = rng.random((1, hp // 16, kp // 4)) < density
            keep.flat[0] = False  # at least one block dropped
            w *= np.repeat(np.repeat(keep, 16, axis=1), 4, axis=2)
            v[...] = w[:, :h, :k].reshape(g * h, k)
        layers.append(lay)
        feat = h * (2 if bidirectional else 1)
    return layers[0] if len(layers) == 1 else rc.nn.Sequential(*layers)


def _layer_flags(data):
    at = LAYOUT["hdr2"].size + LAYOUT["rec_recurrent"].fields["flags"].offset
    return struct.unpack_from("<I", data, at)[0]


SHARED_PARENT = {"generic": "generic", "avx2": "avx2", "avx512": "avx2", "avx512vnni": "avx512vnni",
                 "avxvnni": "avx2", "amx": "avx512vnni", "neon": "neon", "neondot": "neondot"}
SHARED_CASES = [("gru", [7, 19], False, ("ih", "hh")), ("lstm", [5, 33], False, ("ih", "hh")),
                ("gru", [4, 21, 18], False, ("hh",)), ("lstm", [6, 13], True, ("ih", "hh")),
                ("gru", [37, 45], True, ("ih",)), ("lstm", [40, 64], False, ("ih", "hh"))]


@pytest.mark.parametrize("kind,sizes,bidir,which", SHARED_CASES)
def test_gate_shared_layout_bit_identical_to_dense_and_reference_on_every_isa(kind, sizes, bidir, which):
    m = _pruned_shared(kind, sizes, 0.35, seed=len(sizes) * 5 + len(which), bidirectional=bidir, which=which)
    dense = rc.compile(m, "q8")
    sp = rc.compile(m, "q8", sparse={"max_density": 0.9})   # gate-shared where the masks allow: the default
    assert sp.data == rc.compile(m, "q8", sparse={"max_density": 0.9, "shared_gates": True}).data
    per_gate = rc.compile(m, "q8", sparse={"max_density": 0.9, "shared_gates": False})
    want = sum({"ih": 32, "hh": 64}[w] for w in which)
    assert _layer_flags(sp.data) & 96 == want and _layer_flags(per_gate.data) & 96 == 0
    assert len(sp.data) <= len(per_gate.data) <= len(dense.data)  # tensors padded to 64 bytes
    op = kind + "_step_shared"
    rng = np.random.default_rng(2)
    X = (rng.standard_normal((5, 11, sizes[0])) * 2).astype(np.float32)
    lengths = np.array([11, 0, 7, 11, 3])
    ref = gen_vectors.q8_reference_forward(qmodel_from_rnc(read_rnc(sp.data)), X, lengths)[0]
    for isa in AVAILABLE:
        dense.set_isa(isa)
        sp.set_isa(isa)
        assert sp._model.plan_row(0, op, 1, "x") == f"rnc_q8_{kind}_step_spshared_{SHARED_PARENT[isa]}"
        assert np.array_equal(sp.run(X, lengths), ref), isa
        _sparse_equals_dense_on_batches(dense, sp, isa, rng, sizes[0], op,
                                        "spgemv_shared" if "ih" in which else None, bidir)


def test_gate_shared_layout_only_where_every_gate_has_the_same_blocks():
    m = _pruned_shared("gru", [8, 32], 0.5, seed=4)
    w_hh = dict(m.named_parameters())["weight_hh_l0"]
    assert _layer_flags(rc.compile(m, "q8", sparse={"shared_gates": False}).data) & 96 == 0
    shared = {"shared_gates": True}
    data = rc.compile(m, "q8", sparse=shared).data
    assert _layer_flags(data) & 96 == 96
    assert rc.compile(m, "q8", sparse=True).data == data  # the default where every gate's mask agrees
    w_hh[32 + 5, 1] = 0.0 if w_hh[32 + 5, 1] else 0.5  # one block of gate z only: masks differ
    if not w_hh.reshape(3, 2, 16, 8, 4)[1, 0, :, 0].any():  # the block's last weight removed
        w_hh[32 + 6, 2] = 0.5
    data = rc.compile(m, "q8", sparse=shared).data
    assert _layer_flags(data) & 96 == 32  # W_hh per-gate, W_ih still shared
    d0, d1 = read_rnc(rc.compile(m, "q8").data), read_rnc(data)
    for a, b in zip(d0["layers"], d1["layers"], strict=True):
        for n in a["qweights"]:
            assert np.array_equal(a["qweights"][n], b["qweights"][n]), n
    # 8-row blocks and RNN layers keep the per-gate layout
    assert _layer_flags(rc.compile(m, "q8", sparse={"block_rows": 8, **shared}).data) & 96 == 0
    r = _pruned("rnn_tanh", [8, 32], 0.5, 16, seed=1)
    assert _layer_flags(rc.compile(r, "q8", sparse=shared).data) & 96 == 0
    with pytest.raises(ValueError, match="shared_gates"):
        rc.compile(m, "q8", sparse={"shared_gates": 1})


def _shared_file():
    m = _pruned_shared("lstm", [6, 18], 0.5, seed=7)  # K = 6: the last input group is padded
    data = rc.compile(m, "q8", sparse={"max_density": 0.95, "shared_gates": True}).data
    assert _layer_flags(data) & 96 == 96
    cw = LAYOUT["hdr2"].size + 48
    off, n = struct.unpack_from("<II", data, cw + LAYOUT["cellw"].fields["w_ih"].offset)
    return bytearray(data), off, n


def _shared_mutations():
    data, off, n = _shared_file()
    units = struct.unpack_from("<I", data, off + 4)[0]
    nnz = struct.unpack_from("<I", data, off + 12)[0]
    rows = 4 * units * 16
    sums = off + 16 + 4 * (units + 1)
    cols = sums + 4 * rows
    blocks = off + -(-(cols - off + 2 * nnz) // 64) * 64
    flags = LAYOUT["hdr2"].size + LAYOUT["rec_recurrent"].fields["flags"].offset
    lf = _layer_flags(data)
    yield "block_rows 8", off, struct.pack("<I", 8)
    yield "row_blocks = rows / 16", off + 4, struct.pack("<I", rows // 16)
    yield "nnz + 1", off + 12, struct.pack("<I", nnz + 1)
    yield "rowptr[1] = 9", off + 20, struct.pack("<I", 9)
    yield "sums of gate 2 + 1", sums + 4 * 2 * units * 16, struct.pack("<i", struct.unpack_from(
        "<i", data, sums + 4 * 2 * units * 16)[0] + 1)
    yield "col out of range", cols, struct.pack("<H", 2)
    last = [i for i in range(nnz) if struct.unpack_from("<H", data, cols + 2 * i)[0] == 1]
    assert last  # an entry of input group 1 (inputs 4..7, 6 and 7 padding)
    yield "padding weight in gate 3", blocks + 256 * last[0] + 3 * 64 + 4 * 5 + 2, b"\x05"
    yield "weight -128", blocks + 130, b"\x80"
    yield "shared flag without sparse flag", flags, struct.pack("<I", lf & ~4)
    yield "shared flag read as per-gate", flags, struct.pack("<I", lf & ~32)


@pytest.mark.parametrize("what,at,new", list(_shared_mutations()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_shared_refusals_agree_between_c_and_python(what, at, new):
    data, _, _ = _shared_file()
    data[at:at + len(new)] = new
    py, c = _verdicts(fix_crc(data))
    assert (py is None) == (c is None), (what, py, c)
    assert py is not None, what
    assert py in c, (what, py, c)


def test_shared_flag_on_an_rnn_layer_is_refused_by_name():
    data = bytearray(rc.compile(_pruned("rnn_tanh", [8, 32], 0.5, 16, seed=1), "q8", sparse=True).data)
    lf = _layer_flags(data)
    assert lf & 12
    at = LAYOUT["hdr2"].size + LAYOUT["rec_recurrent"].fields["flags"].offset
    struct.pack_into("<I", data, at, lf | (lf & 12) << 3)
    py, c = _verdicts(fix_crc(data))
    assert py is not None and "gate-shared" in py and py in c, (py, c)


# ------------------------------------------------------------------------------------------
# training: gradual block pruning
def test_block_mask_keeps_the_largest_blocks():
    from rnncore.nn import block_mask

    w = np.zeros((16, 8))
    w[:, 0:4] = 1.0  # block 0: score 64
    w[:, 4:8] = 2.0  # block 1: score 256
    m = block_mask(w, 0.5, 16)
    assert m[:, 4:].all() and not m[:, :4].any()
    # 8-row blocks: 4 blocks, 2 kept; a forced (diagonal) block counts toward them, the other
    # goes to the larger blocks (the first of the two equal ones)
    assert block_mask(w, 0.5, 8)[:, 4:].all() and not block_mask(w, 0.5, 8)[:, :4].any()
    keep = np.zeros((16, 8), bool)
    keep[0, 0] = True
    m = block_mask(w, 0.5, 8, keep)
    assert m[:8, :].all() and not m[8:, :].any()
    assert block_mask(w, 1.0, 16).all()


@pytest.mark.parametrize("opt_name", ["sgd_momentum", "sgd_nesterov", "adam", "adam_amsgrad", "adamw"])
def test_pruning_reaches_the_targets_and_no_optimiser_regrows(opt_name):
    from rnncore.nn import BlockPruning
    from rnncore.nn.train import fit

    rng = np.random.default_rng(0)
    X = rng.standard_normal((48, 8, 12))
    y = (X[:, :, 0].sum(1) > 0).astype(int)
    m = rc.nn.Sequential(rc.nn.LSTM(12, 32, seed=1), rc.nn.LastStep(), rc.nn.Linear(32, 2, seed=1))
    opt = {"sgd_momentum": lambda: rc.nn.SGD(m, lr=0.05, momentum=0.9, weight_decay=1e-3),
           "sgd_nesterov": lambda: rc.nn.SGD(m, lr=0.05, momentum=0.9, nesterov=True),
           "adam": lambda: rc.nn.Adam(m, lr=1e-2, weight_decay=1e-3),
           "adam_amsgrad": lambda: rc.nn.Adam(m, lr=1e-2, amsgrad=True),
           "adamw": lambda: rc.nn.AdamW(m, lr=1e-2)}[opt_name]()
    pr = BlockPruning(m, density={"ih": 0.5, "hh": (0.25, 0.5, 0.25, 0.5)}, end_epoch=2, keep_diagonal=False)
    h = fit(m, rc.nn.CrossEntropy(), opt, X, y, epochs=4, batch_size=16, verbose=False, prune=pr)
    assert h["density"][0] > h["density"][1]  # the cubic ramp: denser after the first epoch
    dens = pr.block_density(m)
    # 12 inputs: 3 groups x 2 row blocks = 6 blocks per gate (ceil(0.5*6) = 3); W_hh: 8 groups x 2
    assert dens["0.weight_ih_l0"] == [0.5] * 4
    assert dens["0.weight_hh_l0"] == [0.25, 0.5, 0.25, 0.5]
    params = dict(m.named_parameters())
    for name, mask in pr.masks.items():
        assert np.all(params[name][~mask] == 0), name
        for v in opt.state[name].values():
            if isinstance(v, np.ndarray):
                assert np.all(v[~mask] == 0), (name, opt_name)
    # more steps with the masks held: nothing regrows
    fit(m, rc.nn.CrossEntropy(), opt, X, y, epochs=1, batch_size=16, verbose=False)
    for name, mask in pr.masks.items():
        assert np.all(params[name][~mask] == 0), name
    # the pruned model compiles block-sparse, bit-identical to its dense form
    lstm = m._modules["0"]
    X32 = X[:3].astype(np.float32)
    assert np.array_equal(rc.compile(lstm, "q8").run(X32), rc.compile(lstm, "q8", sparse=True).run(X32))
    assert rc.compile(lstm, "q8", sparse=True)._model.plan_row(0, "lstm_step_sparse", 1, "x")


def test_keep_diagonal_keeps_the_recurrent_diagonal():
    from rnncore.nn import BlockPruning

    m = rc.nn.GRU(4, 40, seed=3)
    pr = BlockPruning(m, density=0.1, end_epoch=1, keep_diagonal=True, matrices="hh")
    pr.update(m, None, epoch=1.0)
    w = dict(m.named_parameters())["weight_hh_l0"].reshape(3, 40, 40)
    assert all(np.all(np.diagonal(w[g]) != 0) for g in range(3))
    assert np.all(dict(m.named_parameters())["weight_ih_l0"] != 0)  # "hh" only
    with pytest.raises(ValueError, match="density"):
        BlockPruning(m, density=(0.5, 0.5))
    with pytest.raises(ValueError, match="block_rows"):
        BlockPruning(m, block_rows=4)
    other = rc.nn.GRU(4, 40, seed=4)
    with pytest.raises(ValueError, match="optimizer"):
        pr.update(m, rc.nn.Adam([m, other]), epoch=1.0)


def test_shared_gates_prunes_the_same_blocks_in_every_gate():
    """shared_gates=True: every gate of a matrix keeps the same block places, those whose summed
    squared norm over the gates is largest (hand-built: a place strong in one gate only beats
    places weak in all three), at the target density; unequal per-gate densities are refused."""
    from rnncore.nn import BlockPruning

    m = rc.nn.GRU(8, 16, seed=0)     # per gate: 1 row block x 2 input groups = 2 block places
    params = dict(m.named_parameters())
    w = params["weight_hh_l0"].reshape(3, 16, 16)
    w[...] = 0.1
    w[0, :, 12:16] = 5.0              # place 3 (inputs 12..15): large in gate r only
    w[1, :, 4:8] = 1.0                # place 1: 1.0 in z and n, 0.1 in r
    w[2, :, 4:8] = 1.0
    # squared norms per place (64 weights a block): 0: 3 * 0.64, 1: 0.64 + 2 * 64,
    # 2: 3 * 0.64, 3: 1600 + 2 * 0.64 -> keep 3 and 1 at density 0.5
    pr = BlockPruning(m, density=0.5, end_epoch=1, matrices="hh", shared_gates=True)
    pr.update(m, None, epoch=1.0)
    kept = w.reshape(3, 16, 4, 4).any(axis=(1, 3))
    assert kept.tolist() == [[False, True, False, True]] * 3
    assert pr.block_density(m)["weight_hh_l0"] == [0.5, 0.5, 0.5]
    # per gate, place 1 would be dropped from gate r (0.1 everywhere but place 3: a tie, the first)
    m2 = rc.nn.GRU(8, 16, seed=0)
    dict(m2.named_parameters())["weight_hh_l0"][...] = w.reshape(48, 16) + (w.reshape(48, 16) == 0) * 0.1
    pr2 = BlockPruning(m2, density=0.5, end_epoch=1, matrices="hh")
    pr2.update(m2, None, epoch=1.0)
    w2 = dict(m2.named_parameters())["weight_hh_l0"].reshape(3, 16, 4, 4)
    assert w2.any(axis=(1, 3)).tolist()[0] == [True, False, False, True]
    with pytest.raises(ValueError, match="shared_gates"):
        BlockPruning(m, density=(0.5, 0.3, 0.5), shared_gates=True)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["gru", "lstm", "rnn_tanh", "rnn_relu"]), i=st.integers(1, 40),
       h=st.integers(1, 40), density=st.sampled_from([0.0, 0.1, 0.3, 0.6, 1.0]), bh=st.sampled_from([8, 16]),
       seed=st.integers(0, 2**31))
def test_random_sparse_layers_bit_identical_on_every_isa(kind, i, h, density, bh, seed):
    """Random shapes and densities (empty and full matrices included): the sparse engine's run
    (batch 1-3: the projection given; 5: per step) and steps equal the dense engine's bits."""
    m = _pruned(kind, [i, h], density, bh, seed=seed % 1000)
    dense = rc.compile(m, "q8")
    # shared_gates: an empty or a full matrix has the same blocks in every gate (gate-shared layout)
    sp = rc.compile(m, "q8", sparse={"max_density": 1.0, "block_rows": bh, "shared_gates": True})
    rng = np.random.default_rng(seed)
    for isa in AVAILABLE:
        dense.set_isa(isa)
        sp.set_isa(isa)
        for b in (1, 3, 5):
            X = (rng.standard_normal((b, 7, i)) * 3).astype(np.float32)
            assert np.array_equal(dense.run(X), sp.run(X)), (isa, b)
        for b in (1, 2):  # steps at one row too (the stream's batch-1 step mode)
            s0, s1 = dense.stream(b), sp.stream(b)
            for t in range(3):
                x = rng.standard_normal((b, i)).astype(np.float32)
                assert np.array_equal(s0.step(x), s1.step(x)), (isa, b, t)
