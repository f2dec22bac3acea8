"""Write the seed corpus of the libFuzzer harness (fuzz_model.c): small .rnc models of every kind.

Built with the C tests' model builder (tests/gen_vectors.py make_spec) and rnncore's writer, in
format versions 2 and 1: f32 and q8; RNN tanh and relu, GRU in both reset forms, LSTM; one- and
two-layer stacks; bidirectional layers; embeddings; heads with every activation; last-step pooling
(both forms), mean, attention and max pooling (v2); static q8 scales; a log-mel front-end (record kind 13); q8
models with every weight matrix stored block-sparse (8- and 16-row blocks); fully-integer models
(precision 3: GRU both forms and activation families, LSTM with a cell clip, RNN ReLU, a stack,
the integer head); a front-end of causal Conv1d's over time (conv_time); strided time layers (conv_time with
stride 2, pool_time: steps without an output). Sizes are small (hidden 2..20) so that an
execution is cheap and the fuzzer's mutations land in headers and records as often as in weights;
hidden 17..20 spans two 16-row blocks.

Usage: python make_seeds.py OUTDIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
import gen_vectors  # noqa: E402

from rnncore.io.rnc import write_rnc  # noqa: E402

CASES = [
    # name: make_spec keyword arguments (precision added below)
    ("rnn_tanh", dict(kind="rnn", sizes=[3, 4])),
    ("rnn_relu_head", dict(kind="rnn", sizes=[3, 5], nonlinearity="relu", head=2, head_act="relu")),
    ("gru", dict(kind="gru", sizes=[2, 4])),
    ("gru_rb_head", dict(kind="gru", sizes=[3, 5], reset_after=False, head=3, head_act="softmax")),
    ("lstm_stack", dict(kind="lstm", sizes=[3, 4, 3], head=2, head_act="sigmoid")),
    ("lstm_h17", dict(kind="lstm", sizes=[5, 17])),
    ("gru_bidir", dict(kind="gru", sizes=[3, 4], bidirectional=True, head=2, head_act="tanh")),
    ("gru_rb_bidir", dict(kind="gru", sizes=[2, 3], bidirectional=True, reset_after=False)),
    ("lstm_bidir_last", dict(kind="lstm", sizes=[2, 3], bidirectional=True, last_step=True,
                             last_bidir=True, head=2)),
    ("rnn_emb_last", dict(kind="rnn", sizes=[4, 5], embedding=6, last_step=True, head=3,
                          head_act="softmax")),
    ("gru_emb", dict(kind="gru", sizes=[3, 20], embedding=5)),
    ("rnn_bidir_stack", dict(kind="rnn", sizes=[2, 3, 2], bidirectional=True)),
    ("gru_mean_head", dict(kind="gru", sizes=[3, 5], last_step=True, last_mean=True, head=2)),   # v2 only
    ("lstm_attn_head", dict(kind="lstm", sizes=[3, 5], last_step=True, last_attn=3, head=2)),   # v2 only
    ("gru_max_head", dict(kind="gru", sizes=[3, 5], last_step=True, last_max=True, head=2)),   # v2 only
]


def main(outdir: str) -> None:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2026)
    n = 0
    for name, kw in CASES:
        for precision in ("f32", "q8"):
            variants = [("", {})]
            if precision == "q8" and not kw.get("embedding"):
                variants.append(("_static", {"scales": (0.03, 0.01)}))
            for suffix, extra in variants:
                spec = gen_vectors.make_spec(rng, precision=precision, **kw, **extra)
                v2_only = kw.get("last_mean") or kw.get("last_attn") or kw.get("last_max")
                for version in (2,) if v2_only else (2, 1):
                    (out / f"{name}_{precision}{suffix}.v{version}.rnc").write_bytes(
                        write_rnc(spec, version=version))
                    n += 1
                if precision == "q8" and kw.get("reset_after", True):  # block-sparse weights (v2)
                    bh = 8 if n % 2 else 16
                    (out / f"{name}_{precision}{suffix}_sparse{bh}.v2.rnc").write_bytes(
                        write_rnc({**spec, "sparse": {"max_density": 1.0, "block_rows": bh}}))
                    n += 1
    for name, data in int_seeds().items():
        (out / f"{name}.v2.rnc").write_bytes(data)
        n += 1
    # a front-end of causal Conv1d's over time (conv_time records, f32 v2): dilated, then grouped
    spec = gen_vectors.make_spec(rng, "gru", [6, 5], "f32", head=2, head_act="none")
    spec["input_size"] = 3
    spec["front"] = [
        {"kind": "conv1d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "dilation": 2,
         "tensors": {"weight": rng.standard_normal((4, 3, 3)).astype(np.float32),
                     "bias": rng.standard_normal(4).astype(np.float32)}},
        {"kind": "relu"},
        {"kind": "conv1d", "in_channels": 4, "out_channels": 6, "kernel_size": 2, "groups": 2,
         "tensors": {"weight": rng.standard_normal((6, 2, 2)).astype(np.float32), "bias": None}},
    ]
    (out / "gru_conv_time_f32.v2.rnc").write_bytes(write_rnc(spec))
    n += 1
    # strided time layers (steps without an output): a Conv1d with stride 2, max and average poolings
    spec = gen_vectors.make_spec(rng, "gru", [4, 5], "f32", head=2, head_act="none")
    spec["input_size"] = 3
    spec["front"] = [
        {"kind": "conv1d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "stride": 2,
         "tensors": {"weight": rng.standard_normal((4, 3, 3)).astype(np.float32),
                     "bias": rng.standard_normal(4).astype(np.float32)}},
        {"kind": "max_pool1d", "channels": 4, "kernel_size": 2, "stride": 2},
        {"kind": "avg_pool1d", "channels": 4, "kernel_size": 2, "stride": 1, "dilation": 2},
    ]
    (out / "gru_pool_time_f32.v2.rnc").write_bytes(write_rnc(spec))
    n += 1
    # a log-mel front-end (record kind 13) before a GRU: natural log, and dB of the magnitude
    from rnncore.nn.melspec import LogMelSpectrogram

    for name, kw in (("log_mel", {}), ("log_mel_db", {"log": "db", "power": 1.0})):
        lm = LogMelSpectrogram(8000, n_fft=16, hop_length=8, n_mels=5, center=False, dtype="float32", **kw)
        spec = gen_vectors.make_spec(rng, "gru", [5, 3], "f32", head=2)
        spec.update(input_size=16, front=[lm.record()])
        (out / f"{name}_f32.v2.rnc").write_bytes(write_rnc(spec))
        n += 1
    print(f"{n} seed models in {out}")


def int_seeds() -> dict[str, bytes]:
    """Fully-integer models (precision 3) quantised from fixed ranges (no calibration data)."""
    import rnncore as rc
    from rnncore.io.rnc_int import write_int_rnc
    from rnncore.quant import integer as qi

    models = {
        "int_gru_table_head": (rc.nn.Sequential(rc.nn.GRU(3, 5, seed=0), rc.nn.LastStep(),
                                                rc.nn.Linear(5, 2, seed=1)), [(-0.9, 0.95)], "table"),
        "int_lstm_clip": (rc.nn.Sequential(rc.nn.LSTM(2, 17, seed=2)), [(-0.8, 0.7)], "gemmlowp"),
        "int_gru_rb_rnn_relu": (rc.nn.Sequential(rc.nn.GRU(3, 4, seed=3, reset_after=False),
                                                 rc.nn.RNN(4, 3, nonlinearity="relu", seed=4)),
                                [(-0.9, 0.95), (0.0, 3.0)], "gemmlowp"),
    }
    out = {}
    for name, (m, h, act) in models.items():
        n = len(h)
        qm = qi.quantize_int_model(m, qi.IntCalibration([(-2.0, 2.0)] * n, h, [3.0] * n, [4.0] * n), act)
        if qm.layers[0].cell == "lstm":
            qm.layers[0].cell_clip = 20000
        out[name] = write_int_rnc(qm)
    return out


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/fuzz/seeds")
