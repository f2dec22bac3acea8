"""Single-node ONNX RNN/GRU/LSTM models for the options ONNX's backend cases leave out.

Each case is checked against onnxruntime (not ``onnx.reference``, which ignores
``sequence_lens``, ``clip`` and ``input_forget``).
"""

from __future__ import annotations

import numpy as np

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def make_case(op: str, *, direction: str = "forward", T: int = 5, B: int = 3, I: int = 3, H: int = 4,
              seq_lens=None, initial: bool = False, peepholes: bool = False, outputs=("Y", "Y_h", "Y_c"),
              scale: float = 0.6, seed: int = 0, **attrs):
    """Return ``(model, feeds)``: one ``op`` node with random weights (initializers) and inputs."""
    import onnx
    from onnx import TensorProto, helper

    g = np.random.default_rng(seed)
    D = 2 if direction == "bidirectional" else 1
    G = GATES[op]
    f32 = np.float32
    W = (scale * g.standard_normal((D, G * H, I))).astype(f32)
    R = (scale * g.standard_normal((D, G * H, H))).astype(f32)
    Bw = (scale * g.standard_normal((D, 2 * G * H))).astype(f32)
    inits = [onnx.numpy_helper.from_array(W, "W"), onnx.numpy_helper.from_array(R, "R"),
             onnx.numpy_helper.from_array(Bw, "B")]
    feeds = {"X": g.standard_normal((T, B, I)).astype(f32)}
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", I])]
    names = ["X", "W", "R", "B", "", "", "", ""]
    if seq_lens is not None:
        feeds["sequence_lens"] = np.asarray(seq_lens, np.int32)
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["N"]))
        names[4] = "sequence_lens"
    if initial:
        feeds["initial_h"] = g.standard_normal((D, B, H)).astype(f32)
        inputs.append(helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, [D, "N", H]))
        names[5] = "initial_h"
        if op == "LSTM":
            feeds["initial_c"] = g.standard_normal((D, B, H)).astype(f32)
            inputs.append(helper.make_tensor_value_info("initial_c", TensorProto.FLOAT, [D, "N", H]))
            names[6] = "initial_c"
    if peepholes:
        inits.append(onnx.numpy_helper.from_array((scale * g.standard_normal((D, 3 * H))).astype(f32), "P"))
        names[7] = "P"
    while names and names[-1] == "":
        names.pop()
    outs = [o if o in outputs else "" for o in ("Y", "Y_h", "Y_c")[: 3 if op == "LSTM" else 2]]
    while outs and outs[-1] == "":
        outs.pop()
    node = helper.make_node(op, names, outs, hidden_size=H, direction=direction, **attrs)
    shapes = {"Y": ["T", D, "N", H], "Y_h": [D, "N", H], "Y_c": [D, "N", H]}
    graph = helper.make_graph(
        [node], f"{op}_case", inputs,
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes[o]) for o in outs if o],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, feeds


def run_onnxruntime(model, feeds) -> dict:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds), strict=True))
