"""Mutated ``.rnc`` files for the loader/reader agreement test (tests/test_rnc_agreement.py).

From a set of valid models (f32/q8; GRU in both forms, LSTM, RNN tanh/relu; embedding, heads,
last-step pooling in both forms, bidirectional; versions 1 and 2), deterministic mutations:
every 32-bit word of the structural part (header, descriptors or records) set to edge values
(length, count, offset and enum edits), random byte flips there and in the tensor area,
NaN/Inf/negative floats and int8 -128 in the tensors, truncations (with ``file_size`` cut too,
so the parser is reached) and extensions. The checksum is fixed up after each edit except in a
few cases that test the checksum itself.

Run as a script it prints how many mutated files the Python reader and the C loader disagree on:
``PYTHONPATH=$PWD python3 tests/rnc_mutations.py``.
"""

from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "csrc" / "tests"))
import gen_vectors  # noqa: E402

from rnncore.io.rnc import write_rnc  # noqa: E402

# name -> (gen_vectors.make_spec arguments, file version)
SEEDS: dict[str, tuple[dict, int]] = {
    "gru_f32_v2": (dict(kind="gru", sizes=[3, 5], precision="f32"), 2),
    "gru_before_q8_static_head_v2": (dict(kind="gru", sizes=[5, 7], precision="q8", reset_after=False,
                                          scales=(0.03, 0.009), head=4, head_act="tanh"), 2),
    "lstm_q8_bidir_head_v2": (dict(kind="lstm", sizes=[3, 4], precision="q8", bidirectional=True, head=3,
                                   head_act="softmax"), 2),
    "lstm_f32_stack_last_step_v2": (dict(kind="lstm", sizes=[4, 5, 3], precision="f32", last_step=True), 2),
    "rnn_relu_f32_embedding_head_v2": (dict(kind="rnn", sizes=[6, 4], precision="f32", nonlinearity="relu",
                                            embedding=5, head=2, head_act="relu"), 2),
    "rnn_tanh_q8_embedding_last_step_head_v2": (dict(kind="rnn", sizes=[5, 6], precision="q8", embedding=4,
                                                     last_step=True, head=3, head_act="sigmoid"), 2),
    "gru_q8_bidir_last_bidir_v2": (dict(kind="gru", sizes=[4, 3], precision="q8", bidirectional=True, head=2,
                                        last_step=True, last_bidir=True), 2),
    "gru_q8_mean_head_v2": (dict(kind="gru", sizes=[3, 4], precision="q8", last_step=True, last_mean=True,
                                 head=2), 2),
    "lstm_q8_attn_head_v2": (dict(kind="lstm", sizes=[3, 4], precision="q8", last_step=True, last_attn=3,
                                  head=2), 2),
    "gru_f32_head_v1": (dict(kind="gru", sizes=[3, 5], precision="f32", head=2, head_act="none"), 1),
    "gru_before_q8_bidir_v1": (dict(kind="gru", sizes=[4, 3], precision="q8", reset_after=False,
                                    bidirectional=True), 1),
    "lstm_q8_embedding_last_bidir_head_v1": (dict(kind="lstm", sizes=[3, 4], precision="q8", embedding=6,
                                                  bidirectional=True, last_step=True, last_bidir=True, head=2,
                                                  head_act="tanh"), 1),
    "rnn_relu_f32_stack_static_v1": (dict(kind="rnn", sizes=[2, 5, 3], precision="f32",
                                          nonlinearity="relu", last_step=True), 1),
    # cell options (the cellopt block after a recurrent record's directions)
    "lstm_q8_options_v2": (dict(kind="lstm", sizes=[3, 4], precision="q8", head=2, options=dict(
        peepholes=True, initial=True, clip=0.5, input_forget=True,
        activations=[("hardsigmoid", 0.2, 0.5), ("elu", 1.0, 0), ("tanh", 0, 0)])), 2),
    "gru_f32_bidir_options_v2": (dict(kind="gru", sizes=[3, 4], precision="f32", bidirectional=True,
                                      options=dict(initial=True, activations=[("sigmoid", 0, 0),
                                                                              ("scaledtanh", 1.5, 0.5)])), 2),
    "rnn_q8_reverse_output_v2": (dict(kind="rnn", sizes=[2, 3], precision="q8", last_step=True,
                                      options=dict(reverse=True, reverse_output=True)), 2),
    "lstm_q8_proj_bidir_v2": (dict(kind="lstm", sizes=[3, 5], precision="q8", bidirectional=True, head=2,
                                   options=dict(proj=2, initial=True)), 2),
    "lstm_f32_proj_v2": (dict(kind="lstm", sizes=[2, 6, 5], precision="f32", options=dict(proj=4)), 2),
    # layer-normalised cells (a cellln after the cellopt)
    "lstm_q8_layer_norm_proj_v2": (dict(kind="lstm", sizes=[3, 5], precision="q8", head=2, options=dict(
        layer_norm={}, proj=3, initial=True)), 2),
    "gru_f32_layer_norm_joint_bidir_v2": (dict(kind="gru", sizes=[2, 4], precision="f32", bidirectional=True,
                                               options=dict(layer_norm={"per_gate": False})), 2),
    # appended last: the seeds before it keep their generators (default_rng(100 + i))
    "lstm_q8_max_head_v2": (dict(kind="lstm", sizes=[3, 4], precision="q8", last_step=True, last_max=True,
                                 head=2), 2),
    "gru_q8_concat_head_v2": (dict(kind="gru", sizes=[3, 4], precision="q8", last_step=True, last_mean=True,
                                   last_max=True, last_last=True, head=2), 2),
}

U32_EDGES = (0, 1, 2, 3, 4, 5, 7, 8, 16, 17, 63, 64, 65, 127, 128, 255, 0x100, 0xFFFF, 0x10000,
             0x7FFFFFFF, 0x80000000, 0xFFFFFFC0, 0xFFFFFFFF)
F32_EDGES = (0x7FC00000, 0x7F800001, 0xFFC00001, 0x7F800000, 0xFF800000, 0xBF800000, 0x80000000,
             0x3F800000)  # NaN quiet and signalling, Inf, -Inf, -1, -0, 1


def _frontend_spec(rng: np.random.Generator, post_pooled: bool) -> dict:
    """A per-step front-end (frame_conv reflect, magnitude, grouped dilated frame_conv, pointwise)
    before an LSTM, pointwise records after it (and after last_step), a linear head."""
    spec = gen_vectors.make_spec(rng, "lstm", [6, 5], "f32", head=1, head_act="sigmoid",
                                 last_step=post_pooled)
    spec["input_size"] = 16
    spec["front"] = [
        {"kind": "frame_conv1d", "in_channels": 1, "out_channels": 4, "kernel_size": 4, "frame_length": 16,
         "stride": 4, "pad_left": 2, "pad_right": 2, "padding_mode": "reflect",
         "tensors": {"weight": rng.standard_normal((4, 1, 4)).astype(np.float32), "bias": None}},
        {"kind": "magnitude"},   # 4 channels x 5 -> 10 features = 2 channels x 5
        {"kind": "frame_conv1d", "in_channels": 2, "out_channels": 2, "kernel_size": 2, "frame_length": 5,
         "dilation": 2, "groups": 2, "stride": 2, "tensors": {
             "weight": rng.standard_normal((2, 1, 2)).astype(np.float32),
             "bias": rng.standard_normal(2).astype(np.float32)}},
        {"kind": "hardsigmoid", "alpha": 0.2, "beta": 0.5},
        {"kind": "layer_norm", "eps": 1e-5, "tensors": {"weight": rng.standard_normal(4).astype(np.float32),
                                                        "bias": rng.standard_normal(4).astype(np.float32)}},
    ]
    spec["layers"][0]["weights"]["weight_ih"] = spec["layers"][0]["weights"]["weight_ih"][:, :4]
    spec["layers"][0]["input_size"] = 4
    spec["post"] = [{"kind": "relu"}, {"kind": "gelu", "approximate": "tanh"},
                    {"kind": "scale_shift", "tensors": {"scale": rng.standard_normal(5).astype(np.float32),
                                                        "shift": rng.standard_normal(5).astype(np.float32)}}]
    if post_pooled:
        spec["post_pooled"] = [{"kind": "tanh"}]
    return spec


#: seeds of per-step records (front-end, pointwise after the recurrent layers): name -> last_step
FRONTEND_SEEDS = {"frontend_f32_v2": False, "frontend_f32_last_step_v2": True}


def _int_model(name: str):
    """A small fully-integer model (precision 3) from fixed ranges (no calibration data)."""
    import rnncore as rc
    from rnncore.quant import integer as qi

    if name == "int_gru2_table_head_v2":   # two GRU layers, the table activations, last step + head
        m = rc.nn.Sequential(rc.nn.GRU(3, 4, num_layers=2, seed=0), rc.nn.LastStep(),
                             rc.nn.Linear(4, 3, seed=1))
        h, act = [(-0.9, 0.95)] * 2, "table"
    elif name == "int_gru2_x16_v2":        # two GRU layers, an int16 input (flag on layer 0)
        m = rc.nn.Sequential(rc.nn.GRU(3, 4, num_layers=2, seed=5))
        h, act = [(-0.9, 0.95)] * 2, "gemmlowp"
    elif name == "int_lstm_v2":            # an LSTM with a cell clip, every step out
        m = rc.nn.Sequential(rc.nn.LSTM(3, 4, seed=2))
        h, act = [(-0.8, 0.7)], "gemmlowp"
    else:                                  # GRU reset_after=False, then an RNN ReLU, last step
        m = rc.nn.Sequential(rc.nn.GRU(3, 4, seed=3, reset_after=False),
                             rc.nn.RNN(4, 4, nonlinearity="relu", seed=4), rc.nn.LastStep())
        h, act = [(-0.9, 0.95), (0.0, 3.0)], "gemmlowp"
    n = len(h)
    dtype = "int16" if "x16" in name else "int8"
    cal = qi.IntCalibration([(-2.0, 2.0)] * n, h, [3.0] * n, [4.0] * n, dtype)
    model = qi.quantize_int_model(m, cal, act)
    if model.layers[0].cell == "lstm":
        model.layers[0].cell_clip = 20000
    return model


#: fully-integer seeds (precision 3): the engine validates and runs them
INT_SEEDS = ("int_gru2_table_head_v2", "int_lstm_v2", "int_gru_before_rnn_relu_v2", "int_gru2_x16_v2")


def _conv_time_spec(rng: np.random.Generator) -> dict:
    """Causal Conv1d over time (conv_time records: dilated, then grouped) with a ReLU between,
    before a GRU and a head."""
    spec = gen_vectors.make_spec(rng, "gru", [6, 5], "f32", head=2, head_act="none")
    spec["input_size"] = 3
    spec["front"] = [
        {"kind": "conv1d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "dilation": 2,
         "pad_left": 4, "pad_right": 0,
         "tensors": {"weight": rng.standard_normal((4, 3, 3)).astype(np.float32),
                     "bias": rng.standard_normal(4).astype(np.float32)}},
        {"kind": "relu"},
        {"kind": "conv1d", "in_channels": 4, "out_channels": 6, "kernel_size": 2, "groups": 2,
         "pad_left": 1, "pad_right": 0,
         "tensors": {"weight": rng.standard_normal((6, 2, 2)).astype(np.float32), "bias": None}},
    ]
    return spec


def _strided_spec(rng: np.random.Generator) -> dict:
    """Strided time layers: a causal Conv1d with stride 2 (conv_time), a max pooling (pool_time,
    kernel 3, stride 2) and an average pooling (kernel 2, dilation 2, stride 1) before a GRU."""
    spec = gen_vectors.make_spec(rng, "gru", [4, 5], "f32", head=2, head_act="none")
    spec["input_size"] = 3
    spec["front"] = [
        {"kind": "conv1d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "stride": 2,
         "pad_left": 2, "pad_right": 0,
         "tensors": {"weight": rng.standard_normal((4, 3, 3)).astype(np.float32),
                     "bias": rng.standard_normal(4).astype(np.float32)}},
        {"kind": "max_pool1d", "channels": 4, "kernel_size": 3, "stride": 2},
        {"kind": "avg_pool1d", "channels": 4, "kernel_size": 2, "stride": 1, "dilation": 2},
    ]
    return spec


def _padded_spec(rng: np.random.Generator, precision: str = "f32") -> dict:
    """Padding on both sides of the time axis (timepad tails): a Conv1d(k3, padding (1, 1)) (int8
    weights in a q8 file), then a max pooling (k3, stride 2, padding 1) and an average pooling (k3,
    padding (1, 1), count_include_pad=False) before a GRU."""
    spec = gen_vectors.make_spec(rng, "gru", [4, 5], precision, head=2, head_act="none")
    spec["input_size"] = 3
    spec["front"] = [
        {"kind": "conv1d", "in_channels": 3, "out_channels": 4, "kernel_size": 3,
         "pad_left": 1, "pad_right": 1,
         "tensors": {"weight": rng.standard_normal((4, 3, 3)).astype(np.float32),
                     "bias": rng.standard_normal(4).astype(np.float32)}},
    ]
    spec["front"] += [
        {"kind": "max_pool1d", "channels": 4, "kernel_size": 3, "stride": 2,
         "pad_left": 1, "pad_right": 1},
        {"kind": "avg_pool1d", "channels": 4, "kernel_size": 3, "stride": 1,
         "pad_left": 1, "pad_right": 1, "count_include_pad": False},
    ]
    return spec


def _log_mel_spec(rng: np.random.Generator, db: bool) -> dict:
    """A log_mel record first (log: 16-sample frames, 5 filters; db, magnitude: 10 filters, two
    of them empty spans) then a layer_norm (db), a GRU and a head."""
    from rnncore.nn.melspec import LogMelSpectrogram

    n_mels = 10 if db else 5
    lm = LogMelSpectrogram(8000, n_fft=16, hop_length=8, n_mels=n_mels, center=False,
                           power=1.0 if db else 2.0, log="db" if db else "log", dtype="float32")
    spec = gen_vectors.make_spec(rng, "gru", [n_mels, 4], "f32", head=2)
    spec["input_size"] = 16
    spec["front"] = [lm.record()]
    if db:
        spec["front"].append({"kind": "layer_norm", "eps": 1e-5, "tensors": {}})
    return spec


#: seeds with a log_mel record: name -> dB (else natural log)
LOG_MEL_SEEDS = {"log_mel_f32_v2": False, "log_mel_db_f32_v2": True}


def seed_files() -> dict[str, bytes]:
    """The valid models the mutations start from."""
    from rnncore.io.rnc_int import write_int_rnc

    out = {name: write_int_rnc(_int_model(name)) for name in INT_SEEDS}
    for i, (name, (kw, version)) in enumerate(SEEDS.items()):
        spec = gen_vectors.make_spec(np.random.default_rng(100 + i), **kw)
        out[name] = write_rnc(spec, version=version)
    for i, (name, pooled) in enumerate(FRONTEND_SEEDS.items()):
        out[name] = write_rnc(_frontend_spec(np.random.default_rng(200 + i), pooled))
    out["conv_time_f32_v2"] = write_rnc(_conv_time_spec(np.random.default_rng(300)))
    # q8 conv_time records (int8, the fconvq8 tail) with a residual block, and a residual after the GRU
    spec = gen_vectors.make_spec(np.random.default_rng(310), "gru", [12, 8], "q8", head=2, front="conv")
    spec["post"] = [{"kind": "relu"}, {"kind": "residual", "span": 1}]
    out["conv_time_residual_q8_v2"] = write_rnc(spec)
    out["strided_time_f32_v2"] = write_rnc(_strided_spec(np.random.default_rng(310)))
    out["padded_time_f32_v2"] = write_rnc(_padded_spec(np.random.default_rng(320)))
    out["padded_time_q8_v2"] = write_rnc(_padded_spec(np.random.default_rng(330), "q8"))
    for i, (name, db) in enumerate(LOG_MEL_SEEDS.items()):
        out[name] = write_rnc(_log_mel_spec(np.random.default_rng(300 + i), db))
    # per-step records between two recurrent layers (q8: a frame_conv with its fconvq8 tail, relu,
    # a residual over both), and a layer_norm between two f32 LSTMs
    import rnncore as rc

    nn = rc.nn
    out["mid_q8_v2"] = rc.compile(nn.Sequential(
        nn.GRU(4, 6, seed=0), nn.Residual(nn.Sequential(nn.Linear(6, 6, seed=1), nn.ReLU())),
        nn.GRU(6, 3, seed=2)), "q8").data
    out["mid_f32_v2"] = rc.compile(nn.Sequential(
        nn.LSTM(3, 4, seed=3), nn.LayerNorm(4), nn.LSTM(4, 2, seed=4), nn.Tanh(), nn.LastStep())).data
    # residuals around recurrent layers (their span crosses the recurrent record): q8 DeepFilterNet
    # x + linear_out(gru(linear_in(x))) after a front-end Linear, f32 stacked residual GRUs
    out["resid_rnn_q8_v2"] = rc.compile(nn.Sequential(nn.Linear(3, 4, seed=5), nn.Residual(nn.Sequential(
        nn.Linear(4, 3, seed=6), nn.GRU(3, 5, seed=7), nn.Tanh(), nn.Linear(5, 4, seed=8))),
        nn.Linear(4, 2, seed=9)), "q8").data
    out["resid_rnn_f32_v2"] = rc.compile(nn.Sequential(
        nn.Residual(nn.GRU(4, 4, seed=10)), nn.Residual(nn.GRU(4, 4, seed=11)), nn.LastStep())).data
    # a chunk front-end (rnncore.nn.chunk): log_affine, concat records, q8
    from rnncore.nn.chunk import FrameConcat, LogAffine

    out["chunk_q8_v2"] = rc.compile(nn.Sequential(
        nn.FrameConv1d(1, 2, 3, frame_length=4, padding=1, seed=12), nn.ReLU(),
        FrameConcat(nn.Sequential(LogAffine(4.0, 1.0), nn.FrameConv1d(2, 1, 1, frame_length=4, seed=13))),
        nn.GRU(12, 3, seed=14)), "q8").data
    # a positions record (kind 17): a frame of 2 channels over 4 positions as 4 steps, their mean out
    from rnncore.nn.chunk import ChunkMean, ChunkPositions

    out["positions_f32_v2"] = rc.compile(nn.Sequential(
        nn.FrameConv1d(1, 2, 3, frame_length=4, padding=1, seed=15), ChunkPositions(2, 4),
        nn.GRU(2, 3, seed=16), nn.Linear(3, 1, seed=17), ChunkMean(4))).data
    # a front-end with instance_norm records (a whole-sequence normalisation: PyanNet's shape), f32
    out["instance_norm_f32_v2"] = rc.compile(nn.Sequential(
        nn.InstanceNorm1d(2, affine=True), nn.Conv1d(2, 3, 3, stride=2, seed=15),
        nn.MaxPool1d(2, 3, stride=2), nn.InstanceNorm1d(3), nn.LeakyReLU(), nn.GRU(3, 4, seed=16),
        nn.Linear(4, 2, seed=17))).data
    return out


def fix_crc(b: bytearray) -> bytes:
    """An edited ``.rnc`` file with its checksum set again, so a reader reaches the edited field."""
    struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[16:])) & 0xFFFFFFFF)
    return bytes(b)


def edit_first_record(data: bytes, struct_name: str, **fields: int) -> bytes:
    """A v2 file with record 0 (a ``struct_name`` record, right after the header) given the u32
    ``fields`` (``precision``: the header's field), the checksum fixed. The offsets come from the
    layout description (rnncore.io.rnc_layout), the one the C loader reads."""
    from rnncore.io.rnc_layout import LAYOUT

    b = bytearray(data)
    hdr, rec = LAYOUT["hdr2"], LAYOUT[struct_name]
    for name, value in fields.items():
        at = hdr.fields[name].offset if name == "precision" else hdr.size + rec.fields[name].offset
        struct.pack_into("<I", b, at, value)
    return fix_crc(b)


def _structure_end(data: bytes) -> int:
    """Bytes of header + descriptors/records (everything before the tensor area's first tensor)."""
    version = struct.unpack_from("<I", data, 4)[0]
    if version == 1:
        return 128 + 128 * struct.unpack_from("<I", data, 24)[0]
    return 64 + struct.unpack_from("<I", data, 32)[0]


def mutations(data: bytes, rng: np.random.Generator, n_random: int = 120) -> Iterator[tuple[str, bytes]]:
    """(description, mutated bytes) for one valid file."""
    n = len(data)
    end = _structure_end(data)
    # 1. every structural u32 word (CRC word excluded) to edge values and to its value +- 1, +- 64
    for at in range(0, end, 4):
        if at == 12:
            continue
        v = struct.unpack_from("<I", data, at)[0]
        vals = set(U32_EDGES) | {(v + d) & 0xFFFFFFFF for d in (1, -1, 64, -64, 8, -8)} | {n, n - 64, n + 64}
        if at % 8 == 0:  # maybe a tensor offset: to another tensor's place, or inside the header
            vals |= {64, 128, end}
        for val in sorted(vals - {v}):
            b = bytearray(data)
            struct.pack_into("<I", b, at, val)
            yield f"word {at} = {val:#x}", fix_crc(b)
        for fv in F32_EDGES:  # float fields (scales) to NaN/Inf/negative
            b = bytearray(data)
            struct.pack_into("<I", b, at, fv)
            yield f"word {at} = f32 bits {fv:#x}", fix_crc(b)
    # 2. random byte flips in the structure, and anywhere
    for k in range(n_random):
        b = bytearray(data)
        lim = end if k % 2 == 0 else n
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(16, lim))
            b[i] ^= int(rng.integers(1, 256))
        yield f"flip {k}", fix_crc(b)
    # 3. tensor values: NaN/Inf/negative floats, int8 -128, anywhere in the tensor area
    for k in range(n_random // 2):
        b = bytearray(data)
        i = int(rng.integers(end, n - 4)) & ~3
        if k % 3 == 2:
            b[i + int(rng.integers(0, 4))] = 0x80
        else:
            struct.pack_into("<I", b, i, F32_EDGES[k % len(F32_EDGES)])
        yield f"tensor word {i}", fix_crc(b)
    # 4. truncations: the buffer only; and with file_size cut too (CRC fixed: the parser is reached)
    for cut in sorted({0, 3, 4, 7, 8, 15, 16, 63, 64, 127, 128, end, end + 1, n - 64, n - 1}):
        if 0 <= cut < n:
            yield f"truncated to {cut}", data[:cut]
            if cut >= 16:
                b = bytearray(data[:cut])
                struct.pack_into("<I", b, 8, cut)
                yield f"truncated to {cut}, file_size fixed", fix_crc(b)
    # 5. extended: trailing bytes (ignored), and counted in file_size (tensor area grows)
    yield "64 trailing bytes", data + bytes(64)
    b = bytearray(data + bytes(64))
    struct.pack_into("<I", b, 8, n + 64)
    yield "file_size + 64 zero bytes", fix_crc(b)
    # 6. a few without the checksum fixed
    for k in range(4):
        b = bytearray(data)
        b[int(rng.integers(16, n))] ^= 1 << k
        yield f"flip {k}, checksum stale", bytes(b)
    # 7. two words at once: a conv_time record's kernel_size and dilation both at their limit (a
    # window one edit cannot make too large)
    if struct.unpack_from("<I", data, 4)[0] == 2:
        pos = 64
        for _ in range(struct.unpack_from("<I", data, 28)[0]):
            kind, size = struct.unpack_from("<II", data, pos)
            if kind == 10:
                b = bytearray(data)
                struct.pack_into("<I", b, pos + 16, 65536)
                struct.pack_into("<I", b, pos + 24, 65536)
                yield f"conv_time at {pos}: kernel_size = dilation = 65536", fix_crc(b)
            if kind == 11:   # pool_time: kernel_size (12) and dilation (20)
                b = bytearray(data)
                struct.pack_into("<I", b, pos + 12, 65536)
                struct.pack_into("<I", b, pos + 20, 65536)
                yield f"pool_time at {pos}: kernel_size = dilation = 65536", fix_crc(b)
                for off, v in ((8, 5), (12, 0), (16, 0), (16, 65537), (20, 0), (24, 2), (28, 1)):
                    b = bytearray(data)
                    struct.pack_into("<I", b, pos + off, v)
                    yield f"pool_time at {pos}: word {off} = {v}", fix_crc(b)
            pos += size


def all_mutations() -> Iterator[tuple[str, str, bytes]]:
    """(seed name, description, bytes) over every seed, deterministic."""
    for i, (name, data) in enumerate(seed_files().items()):
        rng = np.random.default_rng(7 + i)
        for what, b in mutations(data, rng):
            yield name, what, b


def verdicts(data: bytes) -> tuple[str | None, str | None]:
    """(Python reader's error or None, C loader's error or None)."""
    from rnncore import _engine
    from rnncore.io.rnc import check_rnc

    try:
        check_rnc(data)
        py = None
    except ValueError as e:
        py = str(e)
    try:
        _engine.Model(data) if data else None
        c = None if data else "empty"
    except ValueError as e:
        c = str(e)
    return py, c


if __name__ == "__main__":
    total = differ = text_differ = 0
    examples = []
    for name, what, b in all_mutations():
        py, c = verdicts(b)
        total += 1
        if (py is None) != (c is None):
            differ += 1
            if len(examples) < 10:
                examples.append((name, what, py, c))
        elif py is not None and c != "empty" and py not in c:
            text_differ += 1  # both refuse, but the C line does not carry the reader's
    print(f"{total} mutated files, {differ} accepted by one and refused by the other, "
          f"{text_differ} refused by both with different reasons")
    for e in examples:
        print("  ", e)
