"""Keras ``Bidirectional(merge_mode="mul" / "sum" / "ave")`` as ONNX graphs (what tf2onnx writes for
it: the two direction outputs of one bidirectional LSTM / GRU node multiplied / added, ``/ 2`` for
"ave"), built by hand with the onnx helper (tf2onnx is not installed), lowered by
rnncore/io/onnx_import/_lower.py ``_SeqLower.merge`` to ``rc.nn.MulHalves`` / the per-step Linear
``[I I]`` on ``[forward | backward]`` and compiled to the C engine; against onnxruntime running the
same bytes (f32 within 1e-5), q8 bit for bit with the NumPy q8 reference on every ISA path."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from _helpers import c_equals_q8_reference
from onnx import TensorProto
from onnx import helper as oh
from onnx import numpy_helper as nh

import rnncore as rc
from rnncore.io import from_onnx

TOL = dict(rtol=1e-5, atol=1e-5)


def _graph(cell: str, mode: str, seq: bool, *, gather: bool = False, then_gru: bool = False,
           H: int = 4, F: int = 3, seed: int = 0) -> bytes:
    """x (B, T, F) -> Transpose -> bidirectional cell node -> Y (T, 2, B, H) -> the two directions
    (Slice + Squeeze, or Gather) [-> their last / first step] -> Mul / Add [/ 2] -> (B, T, H) or
    (B, H); ``then_gru``: a unidirectional GRU node reads the merged sequence."""
    g = np.random.default_rng(seed)
    G = {"LSTM": 4, "GRU": 3}[cell]
    inits = [nh.from_array((g.standard_normal((2, G * H, F)) * 0.5).astype(np.float32), "W"),
             nh.from_array((g.standard_normal((2, G * H, H)) * 0.5).astype(np.float32), "R"),
             nh.from_array((g.standard_normal((2, 2 * G * H)) * 0.3).astype(np.float32), "B"),
             nh.from_array(np.array([1], np.int64), "ax1"), nh.from_array(np.array(-1, np.int64), "m1"),
             nh.from_array(np.array(0, np.int64), "i0"), nh.from_array(np.array(1, np.int64), "i1")]
    gru = {"linear_before_reset": 1} if cell == "GRU" else {}
    nodes = [oh.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
             oh.make_node(cell, ["xt", "W", "R", "B"], ["Y"], hidden_size=H, direction="bidirectional",
                          **gru)]
    if gather:
        nodes += [oh.make_node("Gather", ["Y", "i0"], ["Yf"], axis=1),
                  oh.make_node("Gather", ["Y", "i1"], ["Yb"], axis=1)]
    else:
        for d, name in enumerate(("Yf", "Yb")):
            inits += [nh.from_array(np.array([d], np.int64), f"s{d}"),
                      nh.from_array(np.array([d + 1], np.int64), f"e{d}")]
            nodes += [oh.make_node("Slice", ["Y", f"s{d}", f"e{d}", "ax1"], [name + "1"]),
                      oh.make_node("Squeeze", [name + "1", "ax1"], [name])]
    f, b = "Yf", "Yb"
    if not seq:   # Keras return_sequences=False: [forward's last step, backward's first]
        nodes += [oh.make_node("Gather", ["Yf", "m1"], ["f"], axis=0),
                  oh.make_node("Gather", ["Yb", "i0"], ["b"], axis=0)]
        f, b = "f", "b"
    nodes.append(oh.make_node({"mul": "Mul", "sum": "Add", "ave": "Add"}[mode], [f, b], ["m"]))
    out = "m"
    if mode == "ave":
        inits.append(nh.from_array(np.array(2.0, np.float32), "two"))
        nodes.append(oh.make_node("Div", ["m", "two"], ["a"]))
        out = "a"
    if then_gru:
        inits += [nh.from_array((g.standard_normal((1, 9, H)) * 0.5).astype(np.float32), "W2"),
                  nh.from_array((g.standard_normal((1, 9, 3)) * 0.5).astype(np.float32), "R2")]
        nodes += [oh.make_node("GRU", [out, "W2", "R2"], ["Y2"], hidden_size=3, linear_before_reset=1),
                  oh.make_node("Squeeze", ["Y2", "ax1"], ["y2"])]
        out, H = "y2", 3
    nodes.append(oh.make_node("Transpose", [out], ["y"], perm=[1, 0, 2]) if seq
                 else oh.make_node("Identity", [out], ["y"]))
    y_shape = ["B", "T", H] if seq else ["B", H]
    graph = oh.make_graph(nodes, "bidirectional_merge", [oh.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                   ["B", "T", F])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], initializer=inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _x(seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((3, 7, 3)).astype(np.float32)


@pytest.mark.parametrize("seq", [True, False], ids=["sequences", "last_step"])
@pytest.mark.parametrize("mode", ["mul", "sum", "ave"])
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_merged_directions_match_onnxruntime(cell, mode, seq):
    blob = _graph(cell, mode, seq)
    x = _x()
    ref = ort.InferenceSession(blob).run(None, {"x": x})[0]
    eng = rc.compile(from_onnx(blob))
    pooled = "" if seq else " > last_step"
    merge = "mul_halves" if mode == "mul" else "linear(8->4)"
    assert eng.describe() == f"{cell.lower()}x2(4){pooled} > {merge}"
    np.testing.assert_allclose(eng.run(x), ref, **TOL)
    if mode == "mul":
        c_equals_q8_reference(rc.compile(from_onnx(blob), "q8"), x)


@pytest.mark.parametrize("mode", ["mul", "sum", "ave"])
def test_a_merge_between_two_recurrent_nodes(mode):
    """The merged sequence read by the next recurrent node: "mul" a per-step record between the
    layers, "sum" / "ave" folded into the next layer's input weights (Gather picks the directions)."""
    blob = _graph("LSTM", mode, True, gather=True, then_gru=True)
    x = _x(6)
    ref = ort.InferenceSession(blob).run(None, {"x": x})[0]
    eng = rc.compile(from_onnx(blob))
    assert eng.describe() == ("lstmx2(4) > mul_halves > gru(3)" if mode == "mul" else "lstmx2(4) > gru(3)")
    np.testing.assert_allclose(eng.run(x), ref, **TOL)
    if mode == "mul":
        c_equals_q8_reference(rc.compile(from_onnx(blob), "q8"), x, np.array([7, 2, 5]))


def test_a_product_of_other_parts_is_refused_naming_the_node():
    model = onnx.load_from_string(_graph("GRU", "mul", True))
    for n in model.graph.node:
        if n.op_type == "Mul":
            n.input[1] = "Yf"          # forward * forward
            n.name = "merge"
    with pytest.raises(ValueError, match=r"node 'merge' \(Mul\) multiplies parts of recurrent outputs other "
                                         r"than the two directions of one bidirectional layer"):
        rc.compile(from_onnx(model.SerializeToString()))
