"""Write tests/data/lstm_int8.tflite: a tiny LSTM quantised by TensorFlow Lite's quantiser.

Run with a Python that has TensorFlow (the tests never need it: they read the file with
LiteRT and the flatbuffer schema):

    /work/tfvenv/bin/python tools/make_tflite_lstm.py [out.tflite [--positive]]

Without arguments it writes both fixtures: tests/data/lstm_int8.tflite and
tests/data/lstm_int8_zp.tflite (gates biased so that h is mostly positive: nonzero zero points
of the state and output, which exercise the zero-point terms of the kernel).

Why not ``TFLiteConverter.from_keras_model``: with Keras 3 (TensorFlow 2.21) the converter
no longer fuses a Keras LSTM into TFLite's LSTM op; it converts the time loop op by op
(WHILE or unrolled FULLY_CONNECTED/LOGISTIC/TANH/MUL), and a float tf.function carrying
Keras 2's ``api_implements="lstm_*"`` attribute is not fused either. So this script writes the
*float* model directly as one UNIDIRECTIONAL_SEQUENCE_LSTM op (the op the converter emits for
a fused LSTM, with its five intermediate tensors, time-major False), from a Keras LSTM's
weights, and quantises it with TensorFlow Lite's own calibrator and quantiser
(``tf.lite.python.optimize.calibrator.Calibrator.calibrate_and_quantize``, the post-training
step of ``TFLiteConverter`` with ``representative_dataset``, ``TFLITE_BUILTINS_INT8`` and int8
input/output): int8 activations and weights, int32 biases, int16 cell state, the 8x8_16
integer LSTM kernel of TFLite's lstm_eval.

The model: x (1, T=12, I=5) int8 -> LSTM(H=8) -> the output sequence (1, T, H) int8.
"""

import sys

import flatbuffers
import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as fb
from tensorflow.lite.python.optimize import calibrator

T, I, H = 12, 5, 8


def keras_weights(seed: int = 18, positive: bool = False):
    """A Keras LSTM's kernel (I, 4H), recurrent kernel (H, 4H), bias (4H,), gates i, f, c, o."""
    tf.keras.utils.set_random_seed(seed)
    layer = tf.keras.layers.LSTM(H, return_sequences=True)
    layer.build((1, T, I))
    rng = np.random.default_rng(seed)
    # larger than Glorot so that the gates saturate somewhere on the data
    k = (rng.standard_normal((I, 4 * H)) * 0.6).astype(np.float32)
    r = (rng.standard_normal((H, 4 * H)) * 0.6).astype(np.float32)
    b = (rng.standard_normal(4 * H) * 0.3).astype(np.float32)
    if positive:   # input, cell and output gates biased open and positive: h > 0 mostly, zp_h != 0
        k[:, 2 * H:3 * H] = np.abs(k[:, 2 * H:3 * H]) * 0.3
        r[:, 2 * H:3 * H] = np.abs(r[:, 2 * H:3 * H]) * 0.3
        b[:H] += 2.0
        b[2 * H:] += 1.5
    layer.set_weights([k, r, b])
    return layer, k, r, b


def float_model(k, r, b) -> bytes:
    """One float UNIDIRECTIONAL_SEQUENCE_LSTM op (inputs in TFLite's 24-input order)."""
    model = fb.ModelT()
    model.version = 3
    model.description = b"rnncore tools/make_tflite_lstm.py"
    model.buffers = [fb.BufferT()]
    sg = fb.SubGraphT()
    sg.tensors = []

    def tensor(name, shape, data=None, variable=False):
        t = fb.TensorT()
        t.name = name.encode()
        t.shape = list(shape)
        t.type = fb.TensorType.FLOAT32
        t.buffer = 0
        if data is not None or variable:
            buf = fb.BufferT()
            if data is not None:
                buf.data = np.ascontiguousarray(data, np.float32).tobytes()
            model.buffers.append(buf)
            t.buffer = len(model.buffers) - 1
        t.isVariable = variable
        sg.tensors.append(t)
        return len(sg.tensors) - 1

    gates = "input forget cell output".split()
    x = tensor("x", (1, T, I))
    w_in = [tensor(f"input_to_{g}_w", (H, I), k[:, j * H:(j + 1) * H].T) for j, g in enumerate(gates)]
    w_rec = [tensor(f"recurrent_to_{g}_w", (H, H), r[:, j * H:(j + 1) * H].T) for j, g in enumerate(gates)]
    bias = [tensor(f"{g}_gate_bias", (H,), b[j * H:(j + 1) * H]) for j, g in enumerate(gates)]
    h0 = tensor("output_state", (1, H), variable=True)
    c0 = tensor("cell_state", (1, H), variable=True)
    inter = [tensor(f"intermediate_{j}", ()) for j in range(5)]
    y = tensor("y", (1, T, H))
    op = fb.OperatorT()
    op.opcodeIndex = 0
    op.inputs = [x, *w_in, *w_rec, -1, -1, -1, *bias, -1, -1, h0, c0, -1, -1, -1, -1]
    op.outputs = [y]
    op.intermediates = inter
    op.builtinOptionsType = fb.BuiltinOptions.UnidirectionalSequenceLSTMOptions
    opt = fb.UnidirectionalSequenceLSTMOptionsT()
    opt.fusedActivationFunction = fb.ActivationFunctionType.TANH
    opt.cellClip, opt.projClip, opt.timeMajor = 0.0, 0.0, False
    op.builtinOptions = opt
    sg.operators = [op]
    sg.inputs, sg.outputs = [x], [y]
    model.subgraphs = [sg]
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
    code.version = 1
    model.operatorCodes = [code]
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def main(out: str, positive: bool = False) -> None:
    layer, k, r, b = keras_weights(positive=positive)
    blob = float_model(k, r, b)
    rng = np.random.default_rng(18)
    data = [np.tanh(rng.standard_normal((1, T, I)) * 1.5).astype(np.float32) * 2.0 for _ in range(200)]
    # the float op computes the Keras layer (checked before quantising)
    it = tf.lite.Interpreter(model_content=blob)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], data[0])
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    want = layer(data[0]).numpy()
    assert np.allclose(got, want, atol=1e-5), np.abs(got - want).max()

    def rep():
        for d in data:
            yield [d]

    quant = calibrator.Calibrator(blob).calibrate_and_quantize(
        rep, tf.int8, tf.int8, False, activations_type=tf.int8, bias_type=tf.int32)
    with open(out, "wb") as f:
        f.write(quant)
    ops = [op["op_name"] for op in tf.lite.Interpreter(model_content=quant)._get_ops_details()]
    print(out, len(quant), "bytes, ops:", ops)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1], positive="--positive" in sys.argv)
    else:
        main("tests/data/lstm_int8.tflite")
        main("tests/data/lstm_int8_zp.tflite", positive=True)
