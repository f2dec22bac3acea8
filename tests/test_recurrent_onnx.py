"""The original-form GRU (``reset_after=False``) against an independent implementation:
onnxruntime's GRU operator with ``linear_before_reset=0``.

PyTorch has no original-form GRU, so this is the forward reference for it (its gradients
are checked by finite differences in ``test_recurrent_gradcheck.py``). ONNX orders the
gates ``z, r, h`` and stacks ``[Wb | Rb]`` into one bias, so the weights are permuted.
onnxruntime computes the GRU in float32: the float32 weights are used by both sides and our
float64 layer is compared within 1e-5. PyTorch's form is also checked against
``linear_before_reset=1``, which confirms the conversion in the test itself.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import rnncore as rc

ATOL = 1e-5


def _zrh(a: np.ndarray, H: int) -> np.ndarray:
    """Reorder the gate blocks along axis 0 from r, z, n (PyTorch) to z, r, h (ONNX)."""
    return np.concatenate([a[H: 2 * H], a[:H], a[2 * H:]])


def onnx_gru(layer: rc.nn.GRU, x: np.ndarray, h0: np.ndarray, lengths: np.ndarray):
    """Run ``layer``'s weights through onnxruntime's GRU; returns (y (B,T,D*H), h_n (D,B,H))."""
    H, D = layer.hidden_size, layer.num_directions
    B, T, I = x.shape
    W, R, Bias = [], [], []
    for d in range(D):
        sfx = "_l0" + ("_reverse" if d else "")
        W.append(_zrh(layer.params["weight_ih" + sfx], H))
        R.append(_zrh(layer.params["weight_hh" + sfx], H))
        Bias.append(np.concatenate([_zrh(layer.params["bias_ih" + sfx], H),
                                    _zrh(layer.params["bias_hh" + sfx], H)]))
    inits = [
        helper.make_tensor("W", TensorProto.FLOAT, (D, 3 * H, I), np.stack(W).astype(np.float32).ravel()),
        helper.make_tensor("R", TensorProto.FLOAT, (D, 3 * H, H), np.stack(R).astype(np.float32).ravel()),
        helper.make_tensor("B", TensorProto.FLOAT, (D, 6 * H), np.stack(Bias).astype(np.float32).ravel()),
    ]
    node = helper.make_node(
        "GRU", ["X", "W", "R", "B", "seq_lens", "h0"], ["Y", "Y_h"],
        hidden_size=H, direction="bidirectional" if D == 2 else "forward",
        linear_before_reset=int(layer.reset_after),
    )
    graph = helper.make_graph(
        [node], "gru",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, (T, B, I)),
         helper.make_tensor_value_info("seq_lens", TensorProto.INT32, (B,)),
         helper.make_tensor_value_info("h0", TensorProto.FLOAT, (D, B, H))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, (T, D, B, H)),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, (D, B, H))],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    Y, Y_h = sess.run(None, {
        "X": np.ascontiguousarray(x.transpose(1, 0, 2)).astype(np.float32),
        "seq_lens": lengths.astype(np.int32),
        "h0": h0.astype(np.float32),
    })
    y = Y.transpose(2, 0, 1, 3).reshape(B, T, D * H)  # (T, D, B, H) -> (B, T, [fwd | bwd])
    return y, Y_h


@st.composite
def configs(draw):
    B, T = draw(st.integers(1, 4)), draw(st.integers(1, 7))
    return {
        "B": B, "T": T, "I": draw(st.integers(1, 5)), "H": draw(st.integers(1, 6)),
        "bidirectional": draw(st.booleans()),
        "lengths": draw(st.lists(st.integers(1, T), min_size=B, max_size=B)),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


def _compare(cfg, reset_after):
    rng = np.random.default_rng(cfg["seed"])
    layer = rc.nn.GRU(cfg["I"], cfg["H"], bidirectional=cfg["bidirectional"], reset_after=reset_after,
                      seed=cfg["seed"])
    for v in layer.params.values():  # weights exactly representable in float32, larger than init
        v[...] = rng.uniform(-1, 1, v.shape).astype(np.float32)
    D = layer.num_directions
    x = rng.standard_normal((cfg["B"], cfg["T"], cfg["I"])).astype(np.float32).astype(np.float64)
    h0 = rng.standard_normal((D, cfg["B"], cfg["H"])).astype(np.float32).astype(np.float64)
    lengths = np.array(cfg["lengths"])
    y_ref, h_ref = onnx_gru(layer, x, h0, lengths)
    y, h_n = layer.forward(x, state=h0, lengths=lengths)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=ATOL)
    np.testing.assert_allclose(h_n, h_ref, rtol=0, atol=ATOL)


_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(configs())
def test_original_gru_matches_onnxruntime_linear_before_reset_0(cfg):
    _compare(cfg, reset_after=False)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_pytorch_form_gru_matches_onnxruntime_linear_before_reset_1(cfg):
    _compare(cfg, reset_after=True)


def test_the_two_forms_differ():
    """Guard against a test that cannot fail: the forms give different outputs on the same weights."""
    cfg = {"B": 2, "T": 5, "I": 3, "H": 4, "bidirectional": False, "lengths": [5, 3], "seed": 0}
    _compare(cfg, reset_after=False)
    a = rc.nn.GRU(3, 4, seed=0, reset_after=False)
    b = rc.nn.GRU(3, 4, seed=0, reset_after=True)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    assert np.abs(a.forward(x)[0] - b.forward(x)[0]).max() > 1e-3
