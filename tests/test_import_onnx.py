"""rc.io.from_onnx: ONNX's own backend node tests, onnxruntime-checked cases, torch.onnx exports."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_cases.backend import collect

import rnncore as rc
from rnncore.io.onnx_import import from_onnx, onnx_run

BACKEND_CASES = [c for op in ("rnn", "gru", "lstm") for c in collect(op)]


def test_every_backend_generator_was_captured():
    # the installed onnx 1.x ships 6 RNN, 6 GRU and 6 LSTM cases; if a release adds some, they run too
    names = {c.name for c in BACKEND_CASES}
    assert len(names) == len(BACKEND_CASES) >= 18
    assert {"test_lstm_with_peepholes", "test_gru_batchwise", "test_simple_rnn_reverse"} <= names


@pytest.mark.parametrize("case", BACKEND_CASES, ids=lambda c: c.name)
def test_onnx_backend_node_case(case):
    model = from_onnx(case.model)
    got = onnx_run(model, case.feeds)
    assert set(got) == set(case.expected)
    for name, want in case.expected.items():
        # onnx's backend runner uses rtol=1e-3, atol=1e-7; the float64 reference is far closer
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6, err_msg=f"{case.name}: {name}")


# -- cases the backend suite leaves out, checked against onnxruntime --------------------------
CUSTOM = {
    # name: (make_case kwargs, attribute whose removal must change the result, or None)
    "gru_linear_before_reset": (dict(op="GRU", linear_before_reset=1), "linear_before_reset"),
    "gru_lbr1_bidir_lengths_initial": (dict(op="GRU", linear_before_reset=1, direction="bidirectional",
                                            seq_lens=[5, 2, 3], initial=True), "linear_before_reset"),
    "gru_lbr0_bidir_lengths": (dict(op="GRU", direction="bidirectional", seq_lens=[1, 5, 3], initial=True),
                               None),
    "rnn_relu": (dict(op="RNN", activations=["Relu"]), "activations"),
    "rnn_bidir_relu_tanh_lengths": (dict(op="RNN", direction="bidirectional", activations=["Relu", "Tanh"],
                                         seq_lens=[3, 5, 1]), "activations"),
    "lstm_bidir_lengths_initial": (dict(op="LSTM", direction="bidirectional", seq_lens=[4, 1, 5],
                                        initial=True), None),
    "lstm_reverse_lengths": (dict(op="LSTM", direction="reverse", seq_lens=[4, 1, 5]), None),
    "rnn_clip": (dict(op="RNN", clip=0.5, scale=2.0), "clip"),
    "gru_clip": (dict(op="GRU", clip=0.5, scale=2.0), "clip"),
    "gru_clip_lbr": (dict(op="GRU", clip=0.5, scale=2.0, linear_before_reset=1), "clip"),
    "lstm_clip": (dict(op="LSTM", clip=0.5, scale=2.0), "clip"),
    "lstm_input_forget": (dict(op="LSTM", input_forget=1), "input_forget"),
    "lstm_input_forget_peepholes_bidir": (dict(op="LSTM", input_forget=1, peepholes=True,
                                               direction="bidirectional", seq_lens=[5, 3, 2]),
                                          "input_forget"),
    "lstm_peepholes_lengths_initial": (dict(op="LSTM", peepholes=True, seq_lens=[2, 5, 4], initial=True),
                                       None),
    "lstm_hardsigmoid_leakyrelu_softsign": (dict(op="LSTM",
                                                 activations=["HardSigmoid", "LeakyRelu", "Softsign"],
                                                 activation_alpha=[0.3, 0.1], activation_beta=[0.4]),
                                            "activations"),
    "gru_hardsigmoid_elu": (dict(op="GRU", activations=["HardSigmoid", "Elu"], activation_alpha=[0.25, 0.7],
                                 activation_beta=[0.45]), "activations"),
    "rnn_scaledtanh": (dict(op="RNN", activations=["ScaledTanh"], activation_alpha=[1.5],
                            activation_beta=[0.7]), "activations"),
    "rnn_affine": (dict(op="RNN", activations=["Affine"], activation_alpha=[0.5], activation_beta=[0.1]),
                   "activations"),
    "rnn_thresholdedrelu": (dict(op="RNN", activations=["ThresholdedRelu"], activation_alpha=[0.2]),
                            "activations"),
    "rnn_softplus": (dict(op="RNN", activations=["Softplus"]), "activations"),
    "lstm_only_y_c": (dict(op="LSTM", outputs=("Y_c",)), None),
    "gru_only_y": (dict(op="GRU", outputs=("Y",), linear_before_reset=1, seq_lens=[3, 3, 5]), None),
}


@pytest.mark.parametrize("name", list(CUSTOM))
def test_custom_case_against_onnxruntime(name):
    from onnx_cases.custom import make_case, run_onnxruntime

    kw, ablate = CUSTOM[name]
    model, feeds = make_case(**kw)
    ref = run_onnxruntime(model, feeds)
    got = onnx_run(from_onnx(model), feeds)
    assert set(got) == set(ref)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-5, err_msg=f"{name}: {k}")
    if ablate is not None:   # the option under test really changes the numbers
        drop = {"activations", "activation_alpha", "activation_beta"} if ablate == "activations" else {ablate}
        kw2 = {k: v for k, v in kw.items() if k not in drop}
        plain = run_onnxruntime(*make_case(**kw2))
        assert max(np.abs(plain[k] - ref[k]).max() for k in ref) > 1e-3


def test_variable_lengths_zero_the_padding_and_hold_the_state():
    from onnx_cases.custom import make_case

    model, feeds = make_case("GRU", direction="bidirectional", seq_lens=[2, 5, 4])
    m = from_onnx(model)
    x = feeds["X"].transpose(1, 0, 2).astype(np.float64)
    y, h = m.forward(x, lengths=np.array([2, 5, 4]))
    assert not y[0, 2:].any() and y[0, :2].all()
    y2, h2 = m.forward(x[:1, :2], lengths=None)
    np.testing.assert_allclose(y2, y[:1, :2], atol=1e-12)
    np.testing.assert_allclose(h2, h[:, :1], atol=1e-12)


# -- graphs written by torch.onnx.export ------------------------------------------------------
torch = pytest.importorskip("torch")   # in the test extra; importorskip only for a partial install


class _Net(torch.nn.Module):
    def __init__(self, kind="GRU", pool="last", batch_first=True, bidirectional=False, layers=2,
                 embedding=False, relu=False):
        super().__init__()
        self.pool, self.batch_first, self.relu = pool, batch_first, relu
        self.emb = torch.nn.Embedding(10, 3) if embedding else None
        self.rnn = getattr(torch.nn, kind)(3, 4, num_layers=layers, batch_first=batch_first,
                                           bidirectional=bidirectional)
        self.fc = torch.nn.Linear(8 if bidirectional else 4, 2)

    def forward(self, x):
        if self.emb is not None:
            x = self.emb(x)
        y, h = self.rnn(x)
        h = h[0] if isinstance(h, tuple) else h
        if not self.batch_first:
            y = y.transpose(0, 1)
        z = {"last": lambda: y[:, -1], "mean": lambda: y.mean(1), "h": lambda: h[-1],
             "hcat": lambda: torch.cat([h[-2], h[-1]], 1), "seq": lambda: y,
             "keep": lambda: y[:, -1:]}[self.pool]()
        return self.fc(torch.relu(z) if self.relu else z), h


TORCH_EXPORTS = {
    "gru2_last": (dict(), ["GRU", "LastStep", "Linear"]),
    "lstm2_time_major_per_step": (dict(kind="LSTM", batch_first=False, pool="seq"), ["LSTM", "Linear"]),
    "embedding_gru_h_n": (dict(embedding=True, pool="h"), ["Embedding", "GRU", "LastStep", "Linear"]),
    "bilstm2_h_n_cat": (dict(kind="LSTM", bidirectional=True, pool="hcat"), ["LSTM", "LastStep", "Linear"]),
    "rnn2_mean": (dict(kind="RNN", pool="mean"), ["RNN", "MaskedMean", "Linear"]),
    "bigru1_last": (dict(bidirectional=True, layers=1), ["GRU", "LastStep", "Linear"]),
}


def _export(m, x):
    import io

    import onnx

    f = io.BytesIO()
    torch.onnx.export(m, (x,), f, dynamo=False, input_names=["x"], output_names=["logits", "h_n"],
                      dynamic_axes={"x": {0: "a", 1: "b"}})
    return onnx.load_from_string(f.getvalue())


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", list(TORCH_EXPORTS))
def test_torch_onnx_export_round_trip(name):
    cfg, structure = TORCH_EXPORTS[name]
    torch.manual_seed(0)
    m = _Net(**cfg).eval()
    g = np.random.default_rng(0)
    bf = cfg.get("batch_first", True)
    if cfg.get("embedding"):
        x_bt = g.integers(0, 10, (3, 6))
    else:
        x_bt = g.standard_normal((3, 6, 3)).astype(np.float32)
    xt = torch.as_tensor(x_bt if bf else x_bt.transpose(1, 0, 2))
    model = from_onnx(_export(m, xt))
    assert [type(layer).__name__ for layer in model] == structure
    with torch.no_grad():
        logits, h_n = (t.numpy() for t in m(xt))
    # the plain rnncore API: batch-major input, whatever layout the export had
    x64 = x_bt if cfg.get("embedding") else x_bt.astype(np.float64)
    np.testing.assert_allclose(model.forward(x64), logits, rtol=1e-5, atol=1e-5)
    # and the ONNX signature (input layout, the extra h_n output)
    got = onnx_run(model, {"x": xt.numpy()})
    np.testing.assert_allclose(got["logits"], logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["h_n"], h_n, rtol=1e-5, atol=1e-5)


# -- refusals name what they refuse -------------------------------------------------------------
@pytest.mark.filterwarnings("ignore")
def test_relu_on_the_data_imports_as_a_graph_and_the_chain_importer_names_it():
    """A Relu between the recurrent layer and the head is no chain rnncore.compile runs: the whole
    graph imports as an OnnxGraph (equal to PyTorch), and as_spec=True names the node."""
    from rnncore.io.onnx_import import OnnxGraph

    torch.manual_seed(0)
    m = _Net(relu=True).eval()
    proto = _export(m, torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match=r"\(Relu\): operator not supported"):
        from_onnx(proto, as_spec=True)
    g = from_onnx(proto)
    assert isinstance(g, OnnxGraph)
    x = np.random.default_rng(3).standard_normal((4, 7, 3)).astype(np.float32)
    with torch.no_grad():
        ref = m(torch.as_tensor(x))
    ref = ref[0] if isinstance(ref, tuple) else ref
    got = g(x)
    got = got[0] if isinstance(got, tuple) else got
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-5)


def test_weights_given_as_graph_inputs_are_refused():
    case = next(c for c in BACKEND_CASES if c.name == "test_gru_defaults")
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(case.model)
    w = next(t for t in m.graph.initializer if t.name == "W")
    m.graph.input.append(onnx.helper.make_tensor_value_info("W", w.data_type, list(w.dims)))
    m.graph.initializer.remove(w)
    with pytest.raises(ValueError, match="W must be a constant"):
        from_onnx(m)


def _constant_initial(op, rows_equal=True):
    from onnx import numpy_helper
    from onnx_cases.custom import make_case

    model, feeds = make_case(op, initial=True)
    for k in ("initial_h", "initial_c")[: 2 if op == "LSTM" else 1]:
        v = feeds.pop(k)
        if rows_equal:
            v = np.repeat(v[:, :1], v.shape[1], axis=1)
            feeds_const = v
        else:
            feeds_const = v
        keep = [i for i in model.graph.input if i.name != k]
        del model.graph.input[:]
        model.graph.input.extend(keep)
        model.graph.initializer.append(numpy_helper.from_array(feeds_const, k))
    return model, feeds


@pytest.mark.parametrize("op", ["GRU", "LSTM"])
def test_constant_initial_state_is_a_learned_initial_state(op):
    from onnx_cases.custom import run_onnxruntime

    model, feeds = _constant_initial(op)
    ref = run_onnxruntime(model, feeds)
    got = onnx_run(from_onnx(model), feeds)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-5, err_msg=k)


def test_constant_initial_state_that_differs_between_rows_runs_as_a_graph():
    model, feeds = _constant_initial("GRU", rows_equal=False)
    with pytest.raises(ValueError, match="differs between batch rows"):
        from_onnx(model, as_spec=True)
    # the chain importer refuses it; the whole-graph import needs the data's batch fixed (a
    # constant state of batch N needs data of batch N: onnxruntime's GRU does not broadcast it)
    with pytest.raises(ValueError, match="a constant state fixes the batch size"):
        from_onnx(model)
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = feeds["X"].shape[1]
    # the NumPy graph model runs the learned initial state: equal to onnxruntime
    import onnxruntime as ort

    g = from_onnx(model)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    got = g.run(feeds)
    for name, r in zip(g.output_names, ref, strict=True):
        np.testing.assert_allclose(got[name], r, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", ["gru2_last", "lstm2_time_major_per_step"])
def test_torch_dynamo_export_round_trip(name):
    """torch.onnx.export's default (dynamo) exporter computes the reshape shapes from Shape/Slice/Mul."""
    import logging

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    cfg, structure = TORCH_EXPORTS[name]
    torch.manual_seed(0)
    m = _Net(**cfg).eval()
    bf = cfg.get("batch_first", True)
    x_bt = np.random.default_rng(1).standard_normal((3, 6, 3)).astype(np.float32)
    xt = torch.as_tensor(x_bt if bf else x_bt.transpose(1, 0, 2))
    prog = torch.onnx.export(m, (xt,), dynamo=True, input_names=["x"], output_names=["logits", "h_n"],
                             dynamic_shapes=({0: "a", 1: "b"},), verbose=False)
    model = from_onnx(prog.model_proto)
    assert [type(layer).__name__ for layer in model] == structure
    with torch.no_grad():
        logits, h_n = (t.numpy() for t in m(xt))
    np.testing.assert_allclose(model.forward(x_bt.astype(np.float64)), logits, rtol=1e-5, atol=1e-5)
    got = onnx_run(model, {"x": xt.numpy()})
    np.testing.assert_allclose(got["logits"], logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["h_n"], h_n, rtol=1e-5, atol=1e-5)


# -- random configurations against onnxruntime --------------------------------------------------
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ACTS = {  # activations onnxruntime implements for these operators, with (alpha, beta) arity
    "Relu": 0, "Tanh": 0, "Sigmoid": 0, "Softsign": 0, "Softplus": 0, "Affine": 2, "LeakyRelu": 1,
    "ThresholdedRelu": 1, "ScaledTanh": 2, "HardSigmoid": 2, "Elu": 1,
}


@st.composite
def _configs(draw):
    op = draw(st.sampled_from(["RNN", "GRU", "LSTM"]))
    direction = draw(st.sampled_from(["forward", "reverse", "bidirectional"]))
    B, T = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    kw = dict(op=op, direction=direction, B=B, T=T, I=draw(st.integers(1, 4)), H=draw(st.integers(1, 5)),
              seed=draw(st.integers(0, 2**16)), initial=draw(st.booleans()))
    if draw(st.booleans()):
        kw["seq_lens"] = draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
    if draw(st.booleans()):
        kw["clip"] = draw(st.floats(0.2, 3.0))
    if op == "GRU":
        kw["linear_before_reset"] = draw(st.integers(0, 1))
    if op == "LSTM":
        kw["peepholes"] = draw(st.booleans())
        kw["input_forget"] = draw(st.integers(0, 1))
    if draw(st.booleans()):
        n = {"RNN": 1, "GRU": 2, "LSTM": 3}[op] * (2 if direction == "bidirectional" else 1)
        acts = draw(st.lists(st.sampled_from(sorted(_ACTS)), min_size=n, max_size=n))
        kw["activations"] = acts
        n_a = sum(1 for a in acts if _ACTS[a] >= 1)
        n_b = sum(1 for a in acts if _ACTS[a] >= 2)
        if n_a:
            kw["activation_alpha"] = draw(st.lists(st.floats(0.1, 1.5), min_size=n_a, max_size=n_a))
        if n_b:
            kw["activation_beta"] = draw(st.lists(st.floats(0.1, 1.0), min_size=n_b, max_size=n_b))
    return kw


@settings(max_examples=40, deadline=None)
@given(_configs())
def test_random_node_configurations_match_onnxruntime(kw):
    from onnx_cases.custom import make_case, run_onnxruntime

    model, feeds = make_case(**kw)
    ref = run_onnxruntime(model, feeds)
    # unbounded activations (Affine, Relu, ...) in every gate can blow up; float32 onnxruntime
    # then overflows where the float64 reference does not: not a comparison of importers
    assume(all(np.all(np.abs(v) < 1e3) for v in ref.values()))
    got = onnx_run(from_onnx(model), feeds)
    for k in ref:
        # float32 onnxruntime: absolute error grows with the size of the values
        scale = max(1.0, float(np.abs(ref[k]).max(initial=0)))
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-4, atol=1e-5 * scale, err_msg=f"{kw}: {k}")


class _Stateful(torch.nn.Module):
    """A streaming step: the initial states are inputs, the final states outputs."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.rnn = getattr(torch.nn, kind)(3, 4, num_layers=2, batch_first=True, bidirectional=True)

    def forward(self, x, h0, c0=None):
        if self.kind == "LSTM":
            y, (h, c) = self.rnn(x, (h0, c0))
            return y, h, c
        y, h = self.rnn(x, h0)
        return y, h


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_torch_export_with_state_inputs(kind):
    import io

    import onnx

    torch.manual_seed(0)
    m = _Stateful(kind).eval()
    g = np.random.default_rng(0)
    x = g.standard_normal((2, 5, 3)).astype(np.float32)
    states = [g.standard_normal((4, 2, 4)).astype(np.float32) for _ in range(2 if kind == "LSTM" else 1)]
    names = ["h0", "c0"][:len(states)]
    outs = ["y", "h", "c"][:len(states) + 1]
    f = io.BytesIO()
    torch.onnx.export(m, (torch.as_tensor(x), *map(torch.as_tensor, states)), f, dynamo=False,
                      input_names=["x", *names], output_names=outs,
                      dynamic_axes={"x": {0: "b", 1: "t"}, **{n: {1: "b"} for n in names}})
    model = from_onnx(onnx.load_from_string(f.getvalue()))
    assert type(model).__name__ == kind and model.num_layers == 2
    with torch.no_grad():
        ref = [t.numpy() for t in m(torch.as_tensor(x), *map(torch.as_tensor, states))]
    got = onnx_run(model, {"x": x, **dict(zip(names, states, strict=True))})
    for name, r in zip(outs, ref, strict=True):
        np.testing.assert_allclose(got[name], r, rtol=1e-5, atol=1e-5)
    # the same through the plain API: the state is rnncore's (L*D, B, H) layout, as in PyTorch
    st = tuple(s.astype(np.float64) for s in states)
    y, h = model.forward(x.astype(np.float64), state=st if kind == "LSTM" else st[0])
    np.testing.assert_allclose(y, ref[0], rtol=1e-5, atol=1e-5)


def _replace_initializer(model, name, array):
    from onnx import numpy_helper

    for i, t in enumerate(model.graph.initializer):
        if t.name == name:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(array.astype(np.float32), name))
            return model
    model.graph.initializer.append(numpy_helper.from_array(array.astype(np.float32), name))
    return model


@pytest.mark.parametrize("what,match", [
    ("B", r"B has shape \(1, 12\), expected \(1, 24\)"),
    ("W", "must have 3 axes"),
    ("R", r"R has shape"),
    ("direction", "does not fit direction='bidirectional'"),
    ("activation", "unknown activation 'Gelu'"),
])
def test_malformed_nodes_are_refused_with_the_reason(what, match):
    import onnx
    from onnx_cases.custom import make_case

    model, _ = make_case("GRU", H=4, I=3)
    if what == "B":
        _replace_initializer(model, "B", np.zeros((1, 12)))
    elif what == "W":
        _replace_initializer(model, "W", np.zeros((12, 3)))
    elif what == "R":
        _replace_initializer(model, "R", np.zeros((1, 12, 3)))
    else:
        node = model.graph.node[0]
        for a in node.attribute:
            if a.name == "direction" and what == "direction":
                a.s = b"bidirectional"
        if what == "activation":
            node.attribute.append(onnx.helper.make_attribute("activations", ["Sigmoid", "Gelu"]))
    with pytest.raises(ValueError, match=match):
        from_onnx(model)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("opset", [9, 11, 13, 18])
@pytest.mark.parametrize("cfg", [
    dict(), dict(pool="keep", kind="LSTM"),
    dict(kind="LSTM", batch_first=False, pool="seq", bidirectional=True),
], ids=["last", "keep_last", "bilstm_time_major"])
def test_torch_export_opsets(opset, cfg):
    """Older opsets write y[:, -1] as Slice + Squeeze and use attributes instead of inputs."""
    import io

    import onnx

    torch.manual_seed(0)
    m = _Net(**cfg).eval()
    x = np.random.default_rng(0).standard_normal((3, 6, 3)).astype(np.float32)
    xt = torch.as_tensor(x if cfg.get("batch_first", True) else x.transpose(1, 0, 2))
    f = io.BytesIO()
    torch.onnx.export(m, (xt,), f, dynamo=False, opset_version=opset, input_names=["x"],
                      output_names=["logits", "h_n"], dynamic_axes={"x": {0: "a", 1: "b"}})
    model = from_onnx(onnx.load_from_string(f.getvalue()))
    with torch.no_grad():
        logits, h_n = (t.numpy() for t in m(xt))
    got = onnx_run(model, {"x": xt.numpy()})
    np.testing.assert_allclose(got["logits"], logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["h_n"], h_n, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("final", ["softmax", "log_softmax", "sigmoid"])
def test_final_activation_is_kept_or_stripped(final):
    """A final Softmax / LogSoftmax / Sigmoid after the head is kept as the head's activation
    (the spec and the f32 / q8 engines give the graph's outputs); with strip_final_activation=True
    each is dropped and the model returns the logits."""
    import io

    import onnx

    def act(z):
        return torch.sigmoid(z) if final == "sigmoid" else getattr(torch, final)(z, -1)

    class WithFinal(_Net):
        def forward(self, x):
            return act(super().forward(x)[0])

    torch.manual_seed(0)
    m = WithFinal().eval()
    x = np.random.default_rng(0).standard_normal((3, 6, 3)).astype(np.float32)
    f = io.BytesIO()
    torch.onnx.export(m, (torch.as_tensor(x),), f, dynamo=False, input_names=["x"], output_names=["p"],
                      dynamic_axes={"x": {0: "a", 1: "b"}})
    proto = onnx.load_from_string(f.getvalue())
    spec = from_onnx(proto, as_spec=True)
    assert spec.head.activation == final
    with torch.no_grad():
        want = m(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(rc.compile(spec, "f32").run(x), want, rtol=1e-5, atol=1e-5)
    # q8 against float: the probabilities within 5e-3; a log-probability's error is the relative one
    rtol = 5e-3 if final == "log_softmax" else 0.0
    np.testing.assert_allclose(rc.compile(spec, "q8").run(x), want, atol=5e-3, rtol=rtol)
    whole = from_onnx(proto)      # the graph as it is (a chain, or an OnnxGraph), final activation included
    with torch.no_grad():
        np.testing.assert_allclose(whole(x.astype(np.float64)), m(torch.as_tensor(x)).numpy(), rtol=1e-5,
                                   atol=1e-6)
    model = from_onnx(proto, strip_final_activation=True)
    assert len(model.onnx_io.stripped) == 1
    logits = torch.as_tensor(model.forward(x.astype(np.float64)))
    with torch.no_grad():
        ref = m(torch.as_tensor(x)).double()
    np.testing.assert_allclose(act(logits).numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)


def test_truncated_or_garbage_files_are_refused(tmp_path):
    case = next(c for c in BACKEND_CASES if c.name == "test_lstm_defaults")
    data = case.model.SerializeToString()
    for bad in (data[: len(data) // 2], b"\x00\xff" * 40):
        with pytest.raises(ValueError, match="from_onnx"):
            from_onnx(bad)
    path = tmp_path / "bad.onnx"
    path.write_bytes(data[:7])
    with pytest.raises(ValueError, match="from_onnx"):
        from_onnx(path)
    with pytest.raises(TypeError, match="from_onnx: expected a path, .* got NoneType"):
        from_onnx(None)
    with pytest.raises(FileNotFoundError):
        from_onnx(tmp_path / "missing.onnx")


def test_the_op_registry_dispatches_by_op_type_and_names_an_unknown_op_and_its_node():
    from onnx import TensorProto, helper

    from rnncore.io.onnx_import import OPS, register

    assert {"RNN", "GRU", "LSTM", "Gemm", "Transpose", "Slice"} <= set(OPS)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])
    node = helper.make_node("Atan", ["x"], ["y"], name="the_atan")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]))
    with pytest.raises(ValueError, match=r"node 'the_atan' \(Atan\): operator not supported .*'Atan'"):
        from_onnx(model)
    # a handler registered for the op type is what the importer calls for its nodes
    seen = []

    @register("Atan")
    def atan(imp, node, ins, a):
        seen.append(node.name)
        return [imp.data(ins[0], node)]

    try:
        with pytest.raises(ValueError, match="no recurrent node reaches a graph output"):
            from_onnx(model, as_spec=True)
        assert seen == ["the_atan"]
        with pytest.raises(ValueError, match="'Atan' already has a handler"):
            register("Atan")(atan)
    finally:
        del OPS["Atan"]
