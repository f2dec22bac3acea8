"""ONNX's own backend node tests for every operator of the whole-graph import (``OnnxGraph``).

Every generator of ``onnx.backend.test.case.node`` whose node is an operator of the import's
tables (``_PURE`` and ``_LAYERS`` in :mod:`rnncore.io.onnx_import._graph`) is regenerated
(:mod:`onnx_cases.backend`), imported with ``rc.io.from_onnx`` in float64 and float32 and run.
A case must either give ONNX's expected outputs or be refused naming its node (a ValueError /
NotImplementedError whose message holds the node's name) -- and the refused cases are the
reviewed list :data:`REFUSED` (case name -> what the message must say), so that a change either
way shows up. A case that imports and returns something else is a failure.

Tolerances: float outputs come out in the import's dtype and are compared at the precision of
the coarser of that dtype and ONNX's expected output (float16: rtol 1e-3 / atol 1e-3; bfloat16:
8e-3, its rounding step 2**-8; float32: rtol 1e-5 / atol 1e-6; float64 both ways: rtol 1e-9 /
atol 1e-12); integer and boolean outputs must be equal, of the same dtype.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx_cases.backend import WEIGHT_SLOTS, collect_ops, parameters, rebuild

from rnncore.io.onnx_import import from_onnx, onnx_run
from rnncore.io.onnx_import._graph import _LAYERS, _PURE

OPS = sorted(set(_PURE) | set(_LAYERS))
# layer ops whose inputs after the data are weights (rnncore layers hold their weights)
_WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "LayerNormalization", "BatchNormalization",
             "InstanceNormalization", "Clip"}


def _initializers(node, k, value) -> bool:
    if node.op_type in ("RNN", "GRU", "LSTM"):
        return k in WEIGHT_SLOTS
    if node.op_type in _WEIGHTED:
        return k > 0
    return parameters(node, k, value)


CASES, GENERATOR_ERRORS = collect_ops(OPS, initializers=_initializers)

# table operators the installed onnx has no node test for
NO_CASES: dict = {}

# generators whose values the collector cannot write as a one-node tensor graph: (module.Class.method)
# -> why. None is of an operator of the tables.
GENERATOR_FAILURES: dict = {
    "loop.Loop.export_loop_13": "a sequence-typed output",
    "loop.Loop.export_loop_16_none": "an optional sequence",
    "sequence_map.SequenceMap.export_sequence_map_add_2_sequences": "sequence inputs",
    "sequence_map.SequenceMap.export_sequence_map_identity_2_sequences": "sequence inputs",
    "sequenceinsert.SequenceInsert.export": "a sequence input",
    "splittosequence.SplitToSequence.export_with_split_2": "a sequence output",
    "string_split.StringSplit.export_empty_string_split": "a string output without a type",
}

# case name -> a piece of the refusal's message (the refusal must also name the node, except the
# whole-graph refusals of WHOLE_GRAPH)
REFUSED: dict = {
    # AveragePool / MaxPool / Conv: 3-D (rnncore has 1-D and 2-D layers only)
    'test_averagepool_3d_default': 'a 3-D pooling',
    'test_averagepool_3d_dilations_small': 'a 3-D pooling',
    'test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_True': 'a 3-D pooling',
    'test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_False': 'a 3-D pooling',
    'test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_True': 'a 3-D pooling',
    'test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_False': 'a 3-D pooling',
    # BatchNormalization: training mode (the running mean / var outputs)
    'test_batchnorm_example_training_mode': 'training-mode outputs',
    'test_batchnorm_epsilon_training_mode': 'training-mode outputs',
    # Cast to float8 / float4 / float8e8m0 / int4 / int2 / uint4 / uint2: element types NumPy has not
    'test_cast_FLOAT_to_FLOAT8E4M3FN': 'Cast to element type 17 (FLOAT8E4M3FN)',
    'test_cast_FLOAT16_to_FLOAT8E4M3FN': 'Cast to element type 17 (FLOAT8E4M3FN)',
    'test_cast_FLOAT_to_FLOAT8E4M3FNUZ': 'Cast to element type 18 (FLOAT8E4M3FNUZ)',
    'test_cast_FLOAT16_to_FLOAT8E4M3FNUZ': 'Cast to element type 18 (FLOAT8E4M3FNUZ)',
    'test_cast_FLOAT_to_FLOAT8E5M2': 'Cast to element type 19 (FLOAT8E5M2)',
    'test_cast_FLOAT16_to_FLOAT8E5M2': 'Cast to element type 19 (FLOAT8E5M2)',
    'test_cast_FLOAT_to_FLOAT8E5M2FNUZ': 'Cast to element type 20 (FLOAT8E5M2FNUZ)',
    'test_cast_FLOAT16_to_FLOAT8E5M2FNUZ': 'Cast to element type 20 (FLOAT8E5M2FNUZ)',
    'test_cast_FLOAT_to_UINT4': 'Cast to element type 21 (UINT4)',
    'test_cast_FLOAT16_to_UINT4': 'Cast to element type 21 (UINT4)',
    'test_cast_FLOAT_to_INT4': 'Cast to element type 22 (INT4)',
    'test_cast_FLOAT16_to_INT4': 'Cast to element type 22 (INT4)',
    'test_cast_FLOAT_to_FLOAT4E2M1': 'Cast to element type 23 (FLOAT4E2M1)',
    'test_cast_FLOAT16_to_FLOAT4E2M1': 'Cast to element type 23 (FLOAT4E2M1)',
    'test_cast_FLOAT_to_UINT2': 'Cast to element type 25 (UINT2)',
    'test_cast_FLOAT16_to_UINT2': 'Cast to element type 25 (UINT2)',
    'test_cast_FLOAT_to_INT2': 'Cast to element type 26 (INT2)',
    'test_cast_FLOAT16_to_INT2': 'Cast to element type 26 (INT2)',
    'test_cast_e8m0_FLOAT_to_FLOAT8E8M0': 'Cast to element type 24 (FLOAT8E8M0)',
    'test_cast_e8m0_FLOAT16_to_FLOAT8E8M0': 'Cast to element type 24 (FLOAT8E8M0)',
    'test_cast_no_saturate_FLOAT_to_FLOAT8E4M3FN': 'Cast to element type 17 (FLOAT8E4M3FN)',
    'test_cast_no_saturate_FLOAT_to_FLOAT8E4M3FNUZ': 'Cast to element type 18 (FLOAT8E4M3FNUZ)',
    'test_cast_no_saturate_FLOAT_to_FLOAT8E5M2': 'Cast to element type 19 (FLOAT8E5M2)',
    'test_cast_no_saturate_FLOAT_to_FLOAT8E5M2FNUZ': 'Cast to element type 20 (FLOAT8E5M2FNUZ)',
    'test_cast_no_saturate_FLOAT16_to_FLOAT8E4M3FN': 'Cast to element type 17 (FLOAT8E4M3FN)',
    'test_cast_no_saturate_FLOAT16_to_FLOAT8E4M3FNUZ': 'Cast to element type 18 (FLOAT8E4M3FNUZ)',
    'test_cast_no_saturate_FLOAT16_to_FLOAT8E5M2': 'Cast to element type 19 (FLOAT8E5M2)',
    'test_cast_no_saturate_FLOAT16_to_FLOAT8E5M2FNUZ': 'Cast to element type 20 (FLOAT8E5M2FNUZ)',
    # Constant alone: a graph that computes nothing from inputs (whole-graph refusal, no node)
    'test_constant': 'computes nothing from its inputs',
    # Dropout: training_mode true (a random mask)
    'test_training_dropout': 'training_mode',
    'test_training_dropout_default': 'training_mode',
    'test_training_dropout_default_mask': 'training_mode',
    'test_training_dropout_zero_ratio': 'training_mode',
    'test_training_dropout_zero_ratio_mask': 'training_mode',
    'test_training_dropout_mask': 'training_mode',
    # Identity of an optional: a graph input that is not a tensor (whole-graph refusal)
    'test_identity_opt': 'must be a tensor of a defined element type',
    'test_maxpool_3d_default': 'a 3-D pooling',
    'test_maxpool_3d_dilations': 'a 3-D pooling',
    'test_maxpool_3d_dilations_use_ref_impl': 'a 3-D pooling',
    'test_maxpool_3d_dilations_use_ref_impl_large': 'a 3-D pooling',
}
REFUSED.update({
    # 2-D pooling pads above kernel // 2: PyTorch refuses them, and rnncore's pooling keeps its limit
    'test_averagepool_2d_pads': 'larger than kernel_shape // 2',
    'test_averagepool_2d_pads_count_include_pad': 'larger than kernel_shape // 2',
    'test_maxpool_2d_pads': 'larger than kernel_shape // 2',
    # MaxPool's second output, the argmax positions
    'test_maxpool_with_argmax_2d_precomputed_pads': 'the Indices output',
    'test_maxpool_with_argmax_2d_precomputed_strides': 'the Indices output',
    # ConvTranspose: rnncore has the 2-D one, with explicit pads and output_padding
    'test_convtranspose_1d': 'a 1-D transposed convolution',
    'test_convtranspose_3d': 'a 3-D transposed convolution',
    'test_convtranspose_output_shape': 'output_shape',
    'test_convtranspose_kernel_shape': 'output_shape',
    'test_convtranspose_autopad_same': "auto_pad='SAME_UPPER'",
})
WHOLE_GRAPH = {"test_constant", "test_identity_opt"}

# cases whose expected values ONNX's generator writes by hand, rounded: onnxruntime is the reference
# there (case name -> why)
ORT_REFERENCE: dict = {
    "test_averagepool_2d_ceil_last_window_starts_on_pad": "expected values written to 4 decimals "
                                                          "(0.2841 for 2.5564 / 9 = 0.284044)",
}


def _expected(case) -> dict:
    if case.name not in ORT_REFERENCE:
        return case.expected
    import onnxruntime as ort

    sess = ort.InferenceSession(case.model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(case.expected, sess.run(list(case.expected), case.feeds), strict=True))

PARAMS = [pytest.param(c, dt, id=f"{op}-{c.name}-{dt}") for op in OPS for c in CASES[op]
          for dt in ("float64", "float32")]

_TOL = {2: (1e-3, 1e-3), 4: (1e-5, 1e-6), 8: (1e-9, 1e-12)}


def _tol(expected: np.dtype, dtype: str) -> tuple:
    if expected.name == "bfloat16":      # 8 significant bits: ONNX rounds its expected values to 2**-8
        return 8e-3, 8e-3
    return _TOL[min(expected.itemsize, np.dtype(dtype).itemsize)]


def _run(case, dtype):
    """("ok", outputs) or ("refused", message)."""
    try:
        model = from_onnx(case.model, dtype=dtype)
        out = onnx_run(model, {n: np.asarray(v) for n, v in case.feeds.items()})
    except (ValueError, NotImplementedError) as e:
        return "refused", str(e)
    return "ok", out


def test_every_op_has_cases():
    assert {op for op in OPS if not CASES[op]} == set(NO_CASES)


def test_generators_run():
    assert GENERATOR_ERRORS.keys() == GENERATOR_FAILURES.keys(), GENERATOR_ERRORS


def test_refused_list_names_cases():
    names = {c.name for op in OPS for c in CASES[op]}
    assert set(REFUSED) <= names, set(REFUSED) - names


@pytest.mark.parametrize("case, dtype", PARAMS)
def test_node_case(case, dtype):
    kind, got = _run(case, dtype)
    if kind == "refused":
        assert case.name in REFUSED, f"{case.name} ({dtype}) refused, not listed: {got}"
        if case.name not in WHOLE_GRAPH:
            assert case.node.name in got, f"the refusal does not name the node {case.node.name!r}: {got}"
        assert REFUSED[case.name] in got, got
        return
    assert case.name not in REFUSED, f"{case.name} ({dtype}) is listed as refused but imports and runs"
    assert list(got) == list(case.expected)
    for name, want in _expected(case).items():
        want, res = np.asarray(want), np.asarray(got[name])
        assert res.shape == want.shape, f"{case.name}: {name}: shape {res.shape}, expected {want.shape}"
        if want.dtype.kind in "fc" or want.dtype.name == "bfloat16":
            # floats come out in the import's dtype (a Cast to float16 / bfloat16 is not rounded)
            assert res.dtype == np.dtype(dtype), f"{case.name}: {name}: dtype {res.dtype}, expected {dtype}"
            rtol, atol = _tol(want.dtype, dtype)
            want = want.astype(np.float64)
            np.testing.assert_allclose(res, want, rtol=rtol, atol=atol, equal_nan=True,
                                       err_msg=f"{case.name}: {name}")
        else:
            assert res.dtype == want.dtype, f"{case.name}: {name}: dtype {res.dtype}, expected {want.dtype}"
            np.testing.assert_array_equal(res, want, err_msg=f"{case.name}: {name}")


# -- every input a graph input (shapes, axes, pads, indices, bounds, weights computed at run time) --
AS_INPUTS = {op: [rebuild(c, ()) for c in CASES[op]] for op in OPS}
PARAMS_AS_INPUTS = [pytest.param(c, id=f"{op}-{c.name}") for op in OPS for c in AS_INPUTS[op]]


@pytest.mark.parametrize("case", PARAMS_AS_INPUTS)
def test_node_case_parameters_as_inputs(case):
    """The same cases with no initializer: a layer refuses weights it cannot hold (naming the node);
    an operation whose shape / axes / pads / indices / bounds now come at run time gives ONNX's
    result or is refused, never another result."""
    kind, got = _run(case, "float64")
    if kind == "refused":
        listed = REFUSED.get(case.name)
        assert (listed is not None and listed in got) or "must be a constant" in got, \
            f"{case.name} refused: {got}"
        if case.name not in WHOLE_GRAPH:
            assert case.node.name in got, f"the refusal does not name the node {case.node.name!r}: {got}"
        return
    for name, want in _expected(case).items():
        want, res = np.asarray(want), np.asarray(got[name])
        assert res.shape == want.shape, f"{case.name}: {name}: shape {res.shape}, expected {want.shape}"
        if want.dtype.kind in "fc" or want.dtype.name == "bfloat16":
            rtol, atol = _tol(want.dtype, "float64")
            np.testing.assert_allclose(res, want.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True,
                                       err_msg=f"{case.name}: {name}")
        else:
            assert res.dtype == want.dtype, f"{case.name}: {name}: dtype {res.dtype}, expected {want.dtype}"
            np.testing.assert_array_equal(res, want, err_msg=f"{case.name}: {name}")


@pytest.mark.parametrize("c_shape, trans_a", [((3, 1), 0), ((3, 3), 0), ((1, 3), 0), ((3,), 1)])
def test_gemm_c_of_the_rows_and_trans_a_match_onnxruntime(c_shape, trans_a):
    """A ``C`` of shape (M, 1) adds one value per row: with M == N it has N values, which the import
    took for a bias of the N outputs before (a per-column add: a silent wrong result)."""
    import onnx
    from onnx import TensorProto, helper
    from onnx_cases.custom import run_onnxruntime

    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 3) if trans_a else (3, 4)).astype(np.float32)
    B = rng.standard_normal((4, 3)).astype(np.float32)
    C = rng.standard_normal(c_shape).astype(np.float32)
    node = helper.make_node("Gemm", ["A", "B", "C"], ["Y"], name="gemm", alpha=0.5, beta=2.0, transA=trans_a)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("A", TensorProto.FLOAT, A.shape)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, (3, 3))],
                              initializer=[onnx.numpy_helper.from_array(B, "B"),
                                           onnx.numpy_helper.from_array(C, "C")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    want = run_onnxruntime(model, {"A": A})["Y"]
    got = onnx_run(from_onnx(model, dtype="float32"), {"A": A})["Y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_layer_norm_over_two_axes_matches_onnxruntime_and_compile_refuses_it():
    """``LayerNormalization`` with ``axis=1`` of ``(B, 4, 5)`` data normalises each row over 20
    values: the import gives onnxruntime's result; ``rc.compile`` (whose LayerNorm normalises the
    last axis) refuses it naming the node, rather than normalise over 5."""
    import onnx
    from onnx import TensorProto, helper
    from onnx_cases.custom import run_onnxruntime

    import rnncore as rc

    rng = np.random.default_rng(1)
    H = 3
    inits = {"s": rng.standard_normal((4, 5)), "b": rng.standard_normal((4, 5)),
             "W": rng.standard_normal((1, 4 * H, 5)) * 0.5, "R": rng.standard_normal((1, 4 * H, H)) * 0.5}
    nodes = [helper.make_node("LayerNormalization", ["x", "s", "b"], ["n"], name="ln", axis=1, epsilon=1e-3),
             helper.make_node("Transpose", ["n"], ["t"], name="tb", perm=[1, 0, 2]),
             helper.make_node("LSTM", ["t", "W", "R"], ["y"], name="lstm", hidden_size=H)]
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, ("B", 4, 5))
    graph = helper.make_graph(nodes, "g", [x_info],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, (4, 1, "B", H))],
                              initializer=[onnx.numpy_helper.from_array(v.astype(np.float32), k)
                                           for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    want = run_onnxruntime(model, {"x": x})["y"]
    np.testing.assert_allclose(onnx_run(from_onnx(model, dtype="float32"), {"x": x})["y"], want,
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"node 'ln' \(LayerNormalization\) normalises the axes from 1 on"):
        rc.compile(from_onnx(model))
