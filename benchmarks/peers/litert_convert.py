"""Convert a GRU/LSTM with given PyTorch weights to LiteRT (dynamic-range int8) via Keras.

Run by compare_peers.py in a subprocess (TensorFlow is imported only here):

    python litert_convert.py gru|lstm WEIGHTS.npz OUT_DIR

Writes OUT_DIR/{step,seq,batch}.tflite for (B, T) = (1, 1), (1, 100), (64, 100), each with
inputs x (B, T, H), h0 (B, H) [, c0] and outputs y (B, T, H), hT [, cT]: the state is passed in
and out. Keras gate orders: GRU z, r, h with reset_after=True (PyTorch's form; bias rows
[input; recurrent]); LSTM i, f, c, o (PyTorch's i, f, g, o) with one bias b_ih + b_hh.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402


def keras_weights(cell: str, w: dict) -> list[np.ndarray]:
    H = w["weight_hh"].shape[1]
    if cell == "gru":
        perm = np.concatenate([np.arange(H, 2 * H), np.arange(0, H), np.arange(2 * H, 3 * H)])  # z,r,n
        return [w["weight_ih"][perm].T, w["weight_hh"][perm].T,
                np.stack([w["bias_ih"][perm], w["bias_hh"][perm]])]
    return [w["weight_ih"].T, w["weight_hh"].T, w["bias_ih"] + w["bias_hh"]]


def build(cell: str, w: dict, B: int, T: int):
    import tensorflow as tf

    keras = tf.keras
    H = w["weight_hh"].shape[1]
    x = keras.Input(shape=(T, H), batch_size=B, name="x")
    h0 = keras.Input(shape=(H,), batch_size=B, name="h0")
    if cell == "gru":
        layer = keras.layers.GRU(H, return_sequences=True, return_state=True, reset_after=True,
                                 unroll=(T == 1))
        y, hT = layer(x, initial_state=h0)
        ins, outs = [x, h0], {"y": y, "hT": hT}
    else:
        c0 = keras.Input(shape=(H,), batch_size=B, name="c0")
        layer = keras.layers.LSTM(H, return_sequences=True, return_state=True, unroll=(T == 1))
        y, hT, cT = layer(x, initial_state=[h0, c0])
        ins, outs = [x, h0, c0], {"y": y, "hT": hT, "cT": cT}
    model = keras.Model(ins, outs)
    layer.set_weights([np.asarray(a, np.float32) for a in keras_weights(cell, w)])
    return model


def convert(model, path: Path) -> None:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic-range int8 weights
    path.write_bytes(conv.convert())


def main() -> int:
    cell, wpath, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    w = dict(np.load(wpath))
    for name, (B, T) in {"step": (1, 1), "seq": (1, 100), "batch": (64, 100)}.items():
        convert(build(cell, w, B, T), out / f"{name}.tflite")
    return 0


if __name__ == "__main__":
    sys.exit(main())
