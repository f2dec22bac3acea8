"""Side-by-side latency of GRU/LSTM inference engines on one pinned core, one thread.

Never run in CI. Set up the peers once (a separate virtual environment)::

    bash benchmarks/peers/setup_peers.sh /work/peer-venv
    /work/peer-venv/bin/python benchmarks/peers/compare_peers.py --out results/peers-zen4

Every engine gets the same weights (a seeded ``torch.nn.GRU``/``LSTM``, I = H) and is checked
against PyTorch fp32 on the same inputs (a 12-step stream with the state carried, and the
sequence/batch calls) before it is timed; an engine that disagrees is reported and not timed.
Timing interleaves the engines round by round (the start rotates); every call is timed on its own
(minus the timer's own cost) and the tables give the median, min and p90 over all calls of all
rounds.

Figures (issue 9): streaming step at batch 1 (``step``), one sequence of T=100 at batch 1
(``seq``), and 64 sequences of T=100 (``batch``, reported as time per call and sequences/s),
for GRU and LSTM at H = 32, 64, 128, 256, 512. Machine floors in the same run (``floor.c``): the
int8 and fp32 matrix-vector product of the step's weights (W_ih and W_hh as one G*H x 2H product)
with an independent best-effort kernel (not rnncore's), rnncore's own GEMV kernel rows for the
same products, and the peak multiply-accumulate rates.

Output in the results folder: ``results.json`` (every sample statistic), ``results.md`` (the
tables) and ``step_latency.png`` (step latency against H, one line per engine, log scale).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# One thread everywhere: set before any engine is imported.
for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
           "TF_NUM_INTEROP_THREADS", "ORT_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/: shared helpers
from machine import cpu_name  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
GATES = {"gru": 3, "lstm": 4}


# ----------------------------------------------------------------------------------- weights

def make_weights(cell: str, H: int, seed: int) -> dict[str, np.ndarray]:
    """PyTorch-initialised weights (uniform +-1/sqrt(H)) of a 1-layer cell with I = H."""
    import torch

    torch.manual_seed(seed)
    mod = (torch.nn.GRU if cell == "gru" else torch.nn.LSTM)(H, H, batch_first=True)
    return {k[:-3]: v.detach().numpy().astype(np.float32).copy()
            for k, v in mod.state_dict().items()}  # weight_ih, weight_hh, bias_ih, bias_hh


def make_inputs(H: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "stream": rng.uniform(-1, 1, (12, 1, H)).astype(np.float32),  # 12 steps, batch 1
        "seq": rng.uniform(-1, 1, (1, 100, H)).astype(np.float32),
        "batch": rng.uniform(-1, 1, (64, 100, H)).astype(np.float32),
    }


def torch_reference(cell: str, w: dict, inp: dict) -> dict[str, np.ndarray]:
    """fp32 PyTorch outputs every engine is checked against: stream h_t, seq y, batch y."""
    import torch

    H = w["weight_hh"].shape[1]
    mod = (torch.nn.GRU if cell == "gru" else torch.nn.LSTM)(H, H, batch_first=True)
    mod.load_state_dict({k + "_l0": torch.from_numpy(v) for k, v in w.items()})
    out = {}
    with torch.inference_mode():
        y, _ = mod(torch.from_numpy(inp["stream"][:, 0][None]))  # stream as one sequence
        out["stream"] = y[0].numpy().copy()                    # (12, H)
        out["seq"] = mod(torch.from_numpy(inp["seq"]))[0].numpy().copy()
        out["batch"] = mod(torch.from_numpy(inp["batch"]))[0].numpy().copy()
    return out


# ----------------------------------------------------------------------------------- engines

@dataclass
class Case:
    """One engine on one (cell, H): callables that run one unit of work, plus checks."""

    engine: str
    precision: str                     # fp32 | int8 | bf16
    step: Callable[[], None] | None = None        # one streaming step (state carried)
    stream: Callable[[np.ndarray], np.ndarray] | None = None   # (12,1,H) -> (12,H) from zero state
    seq: Callable[[], np.ndarray] | None = None   # (1,100,H) -> (1,100,H)
    batch: Callable[[], np.ndarray] | None = None  # (64,100,H) -> (64,100,H)
    note: str = ""
    errors: dict = field(default_factory=dict)


def torch_cases(cell: str, w: dict, inp: dict) -> list[Case]:
    import torch
    from torch.ao.quantization import quantize_dynamic

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only allowed once per process
        pass
    H = w["weight_hh"].shape[1]
    Layer = torch.nn.GRU if cell == "gru" else torch.nn.LSTM
    Cell = torch.nn.GRUCell if cell == "gru" else torch.nn.LSTMCell
    sd = {k: torch.from_numpy(v) for k, v in w.items()}
    cases = []

    def layer_case(mod, name, prec, note=""):
        x1 = torch.from_numpy(inp["stream"][0:1])       # (1,1,H): batch_first (B=1, T=1)
        state = {"s": None}

        def step():
            with torch.inference_mode():
                _, state["s"] = mod(x1, state["s"])

        def stream(xs):
            s, ys = None, []
            with torch.inference_mode():
                for t in range(xs.shape[0]):
                    y, s = mod(torch.from_numpy(xs[t][None]), s)
                    ys.append(y[0, 0].numpy().copy())
            return np.stack(ys)

        xs, xb = torch.from_numpy(inp["seq"]), torch.from_numpy(inp["batch"])

        def seq():
            with torch.inference_mode():
                return mod(xs)[0].numpy()

        def batch():
            with torch.inference_mode():
                return mod(xb)[0].numpy()

        return Case(name, prec, step, stream, seq, batch, note)

    def cell_case(mod, name, prec, note=""):
        x1 = torch.from_numpy(inp["stream"][0])          # (1, H)
        zero = torch.zeros(1, H)
        state = {"s": zero if cell == "gru" else (zero, zero)}

        def step():
            with torch.inference_mode():
                state["s"] = mod(x1, state["s"])

        def stream(xs):
            s, ys = (zero if cell == "gru" else (zero, zero)), []
            with torch.inference_mode():
                for t in range(xs.shape[0]):
                    s = mod(torch.from_numpy(xs[t]), s)
                    ys.append((s if cell == "gru" else s[0])[0].numpy().copy())
            return np.stack(ys)

        return Case(name, prec, step, stream, None, None, note)

    m = Layer(H, H, batch_first=True).eval()
    m.load_state_dict({k + "_l0": v for k, v in sd.items()})
    cases.append(layer_case(m, f"PyTorch nn.{Layer.__name__}", "fp32"))
    c = Cell(H, H).eval()
    c.load_state_dict(sd)
    cases.append(cell_case(c, f"PyTorch nn.{Cell.__name__}", "fp32"))
    # Dynamic int8: quantize_dynamic must be applied to a container (on a bare nn.GRU it
    # silently stays fp32).
    # Weights are packed at quantisation time: load them first, then quantise.
    src = torch.nn.Sequential(Layer(H, H, batch_first=True))
    src[0].load_state_dict({k + "_l0": v for k, v in sd.items()})
    q = quantize_dynamic(src, {Layer}, dtype=torch.qint8)
    assert "quantized.dynamic" in type(q[0]).__module__, type(q[0])
    cases.append(layer_case(q[0], f"PyTorch {Layer.__name__} dyn-int8", "int8"))
    srcc = torch.nn.Sequential(Cell(H, H))
    srcc[0].load_state_dict(sd)
    qc = quantize_dynamic(srcc, {Cell}, dtype=torch.qint8)
    assert "quantized.dynamic" in type(qc[0]).__module__, type(qc[0])
    cases.append(cell_case(qc[0], f"PyTorch {Cell.__name__} dyn-int8", "int8"))
    return cases


# ONNX: gate orders GRU z,r,h (torch r,z,n) and LSTM i,o,f,c (torch i,f,g,o).
def _onnx_perm(cell: str, H: int) -> np.ndarray:
    order = [1, 0, 2] if cell == "gru" else [0, 3, 1, 2]
    return np.concatenate([np.arange(g * H, (g + 1) * H) for g in order])


def build_onnx(cell: str, w: dict, T: int, B: int, path: Path) -> None:
    """A single ONNX GRU/LSTM node (PyTorch's GRU form: linear_before_reset=1), fixed shapes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    H = w["weight_hh"].shape[1]
    p = _onnx_perm(cell, H)
    inits = [
        numpy_helper.from_array(w["weight_ih"][p][None], "W"),
        numpy_helper.from_array(w["weight_hh"][p][None], "R"),
        numpy_helper.from_array(np.concatenate([w["bias_ih"][p], w["bias_hh"][p]])[None], "B"),
    ]
    ins = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, H]),
           helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, B, H])]
    outs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, 1, B, H]),
            helper.make_tensor_value_info("hT", TensorProto.FLOAT, [1, B, H])]
    if cell == "gru":
        node = helper.make_node("GRU", ["X", "W", "R", "B", "", "h0"], ["Y", "hT"], hidden_size=H,
                                linear_before_reset=1)
    else:
        ins.append(helper.make_tensor_value_info("c0", TensorProto.FLOAT, [1, B, H]))
        outs.append(helper.make_tensor_value_info("cT", TensorProto.FLOAT, [1, B, H]))
        node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "h0", "c0"], ["Y", "hT", "cT"],
                                hidden_size=H)
    graph = helper.make_graph([node], f"{cell}", ins, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


class _OnnxRunner:
    """Step / stream / seq / batch around one of three fixed-shape models (T,B) = (1,1), (100,1),
    (100,64); `run(name, feeds)` is supplied by ORT or OpenVINO."""

    def __init__(self, cell, H, inp, run):
        self.cell, self.H, self.run = cell, H, run
        self.x1 = np.ascontiguousarray(inp["stream"][0][None])                   # (1,1,H)
        self.xs = np.ascontiguousarray(inp["seq"].transpose(1, 0, 2))            # (100,1,H)
        self.xb = np.ascontiguousarray(inp["batch"].transpose(1, 0, 2))          # (100,64,H)
        z = np.zeros((1, 1, H), np.float32)
        self.s = [z, z] if cell == "lstm" else [z]

    def _feeds(self, x, s):
        f = {"X": x, "h0": s[0]}
        if self.cell == "lstm":
            f["c0"] = s[1]
        return f

    def step(self):
        out = self.run("step", self._feeds(self.x1, self.s))
        self.s = list(out[1:])

    def stream(self, xs):
        z = np.zeros((1, 1, self.H), np.float32)
        s, ys = ([z, z] if self.cell == "lstm" else [z]), []
        for t in range(xs.shape[0]):
            out = self.run("step", self._feeds(np.ascontiguousarray(xs[t][None]), s))
            s = list(out[1:])
            ys.append(np.array(out[0]).reshape(-1).copy())
        return np.stack(ys)

    def _zero(self, B):
        z = np.zeros((1, B, self.H), np.float32)
        return [z, z] if self.cell == "lstm" else [z]

    def seq(self):
        y = np.asarray(self.run("seq", self._feeds(self.xs, self._zero(1)))[0])  # (T,1,1,H)
        return y[:, 0].transpose(1, 0, 2)

    def batch(self):
        y = np.asarray(self.run("batch", self._feeds(self.xb, self._zero(64)))[0])  # (T,1,B,H)
        return y[:, 0].transpose(1, 0, 2)


def onnx_paths(cell, w, tmp: Path) -> dict[str, Path]:
    H = w["weight_hh"].shape[1]
    paths = {}
    for name, (T, B) in {"step": (1, 1), "seq": (100, 1), "batch": (100, 64)}.items():
        p = tmp / f"{cell}{H}_{name}.onnx"
        build_onnx(cell, w, T, B, p)
        paths[name] = p
    return paths


def ort_cases(cell, w, inp, tmp: Path) -> list[Case]:
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    H = w["weight_hh"].shape[1]
    paths = onnx_paths(cell, w, tmp)

    def sessions(ps):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return {k: ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
                for k, p in ps.items()}

    def case(ss, name, prec, note="IOBinding over preallocated numpy buffers"):
        # ORT's fastest Python path: inputs and outputs bound once to OrtValues that share
        # preallocated numpy buffers; a call copies the feeds in and runs the binding.
        binds = {}
        for k, sess in ss.items():
            b = sess.io_binding()
            ins = {i.name: np.zeros(i.shape, np.float32) for i in sess.get_inputs()}
            outs = [np.zeros(o.shape, np.float32) for o in sess.get_outputs()]
            for n, a in ins.items():
                b.bind_ortvalue_input(n, ort.OrtValue.ortvalue_from_numpy(a))
            for o, a in zip(sess.get_outputs(), outs, strict=True):
                b.bind_ortvalue_output(o.name, ort.OrtValue.ortvalue_from_numpy(a))
            binds[k] = (sess, b, ins, outs)

        def run(k, f):
            sess, b, ins, outs = binds[k]
            for n, v in f.items():
                if v is not ins[n]:
                    np.copyto(ins[n], v)
            sess.run_with_iobinding(b)
            return outs

        r = _OnnxRunner(cell, H, inp, run)
        return Case(name, prec, r.step, r.stream, r.seq, r.batch, note)

    cases = [case(sessions(paths), "ONNX Runtime", "fp32")]
    if cell == "lstm":  # ORT has an int8 LSTM (DynamicQuantizeLSTM), no int8 GRU
        qp = {}
        for k, p in paths.items():
            qp[k] = p.with_name(p.stem + "_int8.onnx")
            quantize_dynamic(str(p), str(qp[k]), op_types_to_quantize=["LSTM"],
                             weight_type=QuantType.QInt8)
        import onnx

        ops = {n.op_type for n in onnx.load(str(qp["step"])).graph.node}
        assert "DynamicQuantizeLSTM" in ops, ops
        cases.append(case(sessions(qp), "ONNX Runtime int8 (DynamicQuantizeLSTM)", "int8"))
    return cases


def openvino_cases(cell, w, inp, tmp: Path) -> list[Case]:
    """OpenVINO through its fastest Python path: input tensors that share numpy buffers (set once),
    ``infer()`` without arguments, outputs read as views of the request's tensors."""
    import openvino as ov

    H = w["weight_hh"].shape[1]
    paths = onnx_paths(cell, w, tmp)
    core = ov.Core()
    cases = []
    for prec in ("f32", "bf16"):
        cfg = {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
               "INFERENCE_PRECISION_HINT": prec, "ENABLE_CPU_PINNING": False}
        reqs = {}
        for k, p in paths.items():
            cm = core.compile_model(core.read_model(str(p)), "CPU", cfg)
            req = cm.create_infer_request()
            bufs = {}
            for port in cm.inputs:
                name = port.get_any_name()
                bufs[name] = np.zeros(tuple(port.get_shape()), np.float32)
                req.set_tensor(name, ov.Tensor(bufs[name], shared_memory=True))
            reqs[k] = (req, bufs, len(cm.outputs))

        def run(k, f, reqs=reqs):
            req, bufs, nout = reqs[k]
            for name, v in f.items():
                if v is not bufs[name]:
                    np.copyto(bufs[name], v)
            req.infer()
            return [req.get_output_tensor(i).data for i in range(nout)]

        r = _OnnxRunner(cell, H, inp, run)
        cases.append(Case(f"OpenVINO {prec}", "fp32" if prec == "f32" else "bf16", r.step, r.stream,
                          r.seq, r.batch, "INFERENCE_PRECISION_HINT=" + prec + "; shared input tensors"))
    return cases


def _ncnn_files(cell, w, tmp: Path, int8: bool = False) -> tuple[Path, Path]:
    """ncnn param/bin: GRU gate order R,U,N with 4 bias rows (R, U, WN, BN); LSTM I,F,O,G with
    4 bias rows; hidden (and cell) state as extra input/output blobs.

    int8 (as ncnn2int8 writes RNN layers, int8_scale_term=2): weights stored as int8 rows with
    the int8 tag, one float scale 127/absmax per row (weight_xc then weight_hc scales, raw)."""
    H = w["weight_hh"].shape[1]
    if cell == "gru":
        order = [0, 1, 2]  # torch r,z,n == ncnn R,U,N
        bih, bhh = w["bias_ih"], w["bias_hh"]
        bias = np.stack([bih[:H] + bhh[:H], bih[H:2 * H] + bhh[H:2 * H], bih[2 * H:], bhh[2 * H:]])
    else:
        order = [0, 1, 3, 2]  # torch i,f,g,o -> ncnn I,F,O,G
        bias = None

    def rows(a):
        return np.concatenate([a[g * H:(g + 1) * H] for g in order])

    if bias is None:
        bias = rows(w["bias_ih"] + w["bias_hh"]).reshape(4, H)
    wx, wh = rows(w["weight_ih"]), rows(w["weight_hh"])

    def f32_blob(a):
        return np.zeros(1, np.uint32).tobytes() + np.ascontiguousarray(a, np.float32).tobytes()

    def i8_blob(a):
        m = np.abs(a).max(axis=1)
        scale = np.where(m > 0, 127.0 / np.where(m > 0, m, 1), 1.0).astype(np.float32)
        q = np.clip(np.rint(a * scale[:, None]), -127, 127).astype(np.int8).tobytes()
        q += b"\0" * (-len(q) % 4)
        return np.array([0x000D4B38], np.uint32).tobytes() + q, scale

    binp = tmp / f"ncnn_{cell}{H}{'_int8' if int8 else ''}.bin"
    with open(binp, "wb") as f:
        if int8:
            bx, sx = i8_blob(wx)
            bh, sh = i8_blob(wh)
            f.write(bx + f32_blob(bias) + bh + sx.tobytes() + sh.tobytes())
        else:
            f.write(f32_blob(wx) + f32_blob(bias) + f32_blob(wh))
    wsize = GATES[cell] * H * H
    extra = " 8=2" if int8 else ""
    if cell == "gru":
        lines = ["7767517", "3 4", "Input in0 0 1 in0", "Input in1 0 1 in1",
                 f"GRU rnn 2 2 in0 in1 out0 out1 0={H} 1={wsize} 2=0{extra}"]
    else:
        lines = ["7767517", "4 6", "Input in0 0 1 in0", "Input in1 0 1 in1", "Input in2 0 1 in2",
                 f"LSTM rnn 3 3 in0 in1 in2 out0 out1 out2 0={H} 1={wsize} 2=0 3={H}{extra}"]
    parp = binp.with_suffix(".param")
    parp.write_text("\n".join(lines) + "\n")
    return parp, binp


def ncnn_cases(cell, w, inp, tmp: Path) -> list[Case]:
    return [_ncnn_case(cell, w, inp, tmp, False), _ncnn_case(cell, w, inp, tmp, True)]


def _ncnn_case(cell, w, inp, tmp: Path, int8: bool) -> Case:
    import ncnn

    H = w["weight_hh"].shape[1]
    parp, binp = _ncnn_files(cell, w, tmp, int8)
    net = ncnn.Net()
    net.opt.num_threads = 1
    net.opt.use_packing_layout = True
    net.opt.use_int8_inference = True
    assert net.load_param(str(parp)) == 0 and net.load_model(str(binp)) == 0
    nstate = 2 if cell == "lstm" else 1
    keep = {}  # ncnn.Mat(ndarray) does not copy: keep the arrays alive

    def run(x2d, states):
        ex = net.create_extractor()
        keep["x"], keep["s"] = x2d, states
        ex.input("in0", ncnn.Mat(x2d))
        for i, s in enumerate(states):
            ex.input(f"in{i + 1}", ncnn.Mat(s))
        outs = []
        for i in range(nstate + 1):
            ret, m = ex.extract(f"out{i}")
            assert ret == 0
            outs.append(np.array(m).copy())
        return outs

    x1 = np.ascontiguousarray(inp["stream"][0])  # (1, H): T=1 rows of H
    st = {"s": [np.zeros(H, np.float32) for _ in range(nstate)]}

    def step():
        st["s"] = [o.reshape(H) for o in run(x1, st["s"])[1:]]

    def stream(xs):
        s, ys = [np.zeros(H, np.float32) for _ in range(nstate)], []
        for t in range(xs.shape[0]):
            o = run(np.ascontiguousarray(xs[t]), s)
            s = [a.reshape(H) for a in o[1:]]
            ys.append(o[0].reshape(-1))
        return np.stack(ys)

    xs = np.ascontiguousarray(inp["seq"][0])
    xb = [np.ascontiguousarray(inp["batch"][b]) for b in range(64)]
    z = [np.zeros(H, np.float32) for _ in range(nstate)]

    def seq():
        return run(xs, z)[0].reshape(1, 100, H)

    def batch():  # ncnn's GRU/LSTM take one sequence: the batch is a loop
        return np.stack([run(x, z)[0].reshape(100, H) for x in xb])

    return Case("ncnn int8" if int8 else "ncnn", "int8" if int8 else "fp32", step, stream, seq, batch,
                "int8_scale_term=2 (per-row int8 weights); batch = loop" if int8 else "batch = loop")


def litert_cases(cell, w, inp, tmp: Path, python: str) -> list[Case]:
    """LiteRT dynamic-range int8 from Keras models converted (in a subprocess, with TensorFlow)
    once per (cell, H, shape)."""
    from ai_edge_litert.interpreter import Interpreter

    H = w["weight_hh"].shape[1]
    wpath = tmp / f"w_{cell}{H}.npz"
    np.savez(wpath, **w)
    out = tmp / f"litert_{cell}{H}"
    out.mkdir(exist_ok=True)
    r = subprocess.run([python, str(HERE / "litert_convert.py"), cell, str(wpath), str(out)],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError("LiteRT conversion failed: " + r.stderr[-2000:])
    interps = {}
    for k in ("step", "seq", "batch"):
        it = Interpreter(model_path=str(out / f"{k}.tflite"), num_threads=1)
        it.allocate_tensors()
        # tensor indices by the Keras names, from the signature (the raw tensor names are not)
        sig = it.get_signature_runner()
        ins = {n: d["index"] for n, d in sig.get_input_details().items()}
        outs = {n: d["index"] for n, d in sig.get_output_details().items()}
        interps[k] = (it, ins, outs)

    snames = ["h0", "c0"] if cell == "lstm" else ["h0"]
    onames = ["y", "hT", "cT"] if cell == "lstm" else ["y", "hT"]

    def call(k, x, states):  # the interpreter's own set_tensor / invoke / get_tensor
        it, ins, outs = interps[k]
        it.set_tensor(ins["x"], x)
        for n, s in zip(snames, states, strict=True):
            it.set_tensor(ins[n], s)
        it.invoke()
        return [it.get_tensor(outs[n]) for n in onames]

    ns = 2 if cell == "lstm" else 1
    z1 = [np.zeros((1, H), np.float32)] * ns
    st = {"s": z1}
    x1 = np.ascontiguousarray(inp["stream"][0][None])  # (1,1,H)

    def step():
        st["s"] = call("step", x1, st["s"])[1:]

    def stream(xs):
        s, ys = z1, []
        for t in range(xs.shape[0]):
            o = call("step", np.ascontiguousarray(xs[t][None]), s)
            s = o[1:]
            ys.append(o[0].reshape(-1).copy())
        return np.stack(ys)

    z64 = [np.zeros((64, H), np.float32)] * ns

    def seq():
        return call("seq", inp["seq"], z1)[0]

    def batch():
        return call("batch", inp["batch"], z64)[0]

    return [Case("LiteRT dyn-int8", "int8", step, stream, seq, batch,
                 "Keras -> TFLite, Optimize.DEFAULT (dynamic range)")]


def rnncore_cases(cell, w, inp, isas: list[str]) -> list[Case]:
    """rnncore through rc.compile (dynamic q8 activation scales, like the peers' dynamic int8),
    one case per precision x ISA path."""
    import rnncore as rc

    H = w["weight_hh"].shape[1]
    cases = []
    Layer = rc.nn.GRU if cell == "gru" else rc.nn.LSTM
    model = Layer(input_size=H, hidden_size=H)
    model.load_state_dict({k + "_l0": v for k, v in w.items()})
    for prec in ("q8", "f32"):
        for isa in isas:
            if prec == "f32" and isa in ("avx512vnni", "avxvnni", "amx", "neondot"):
                continue  # int8-only extensions: their f32 kernels are the parent path's
            eng = rc.compile(model, precision=prec)
            eng.set_isa(isa)
            assert eng.isa == isa, (eng.isa, isa)
            st = eng.stream(batch=1)
            x1 = np.ascontiguousarray(inp["stream"][0])  # (1, H)
            buf = np.empty((1, H), np.float32)

            def step(st=st, x1=x1, buf=buf):
                st.step(x1, out=buf)

            def stream(xs, eng=eng):
                s = eng.stream(batch=1)
                return np.stack([np.array(s.step(np.ascontiguousarray(xs[t]))).reshape(-1)
                                 for t in range(xs.shape[0])])

            def seq(eng=eng):
                return np.asarray(eng.run(inp["seq"]))

            def batch(eng=eng):
                return np.asarray(eng.run(inp["batch"]))

            cases.append(Case(f"rnncore {prec} {isa}", "int8" if prec == "q8" else "fp32",
                              step, stream, seq, batch, "stream.step(x, out=buf); engine.run(X)"))
    return cases


# ----------------------------------------------------------------------------------- floors

def build_floor(tmp: Path) -> tuple[Path | None, str]:
    """Compile floor.c with the C core, every source with only its own ISA flags as listed in
    csrc/sources.mk (NAME_SRCS compiled with NAME_FLAGS, all with COMMON_CFLAGS)."""
    mk = ROOT / "csrc" / "sources.mk"
    if not mk.exists():
        return None, "csrc/sources.mk not found"
    var: dict[str, str] = {}
    text = mk.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        if "=" in line:
            k, v = line.split("=", 1)
            var[k.strip().rstrip(":+?")] = v.strip()
    common = var.get("COMMON_CFLAGS", "-std=c99 -O3").split()
    objs = []
    cc = os.environ.get("CC", "cc")
    for k, v in var.items():
        if not k.endswith("_SRCS"):
            continue
        flags = var.get(k[:-5] + "_FLAGS", "").split()
        for src in v.split():
            o = tmp / (src.replace("/", "_") + ".o")
            r = subprocess.run([cc, *common, *flags, "-Icsrc/include", "-Icsrc/src", "-c", f"csrc/{src}",
                                "-o", str(o)], cwd=ROOT, capture_output=True, text=True)
            if r.returncode != 0:  # e.g. ARM files on x86 with ARM-only flags
                continue
            objs.append(str(o))
    exe = tmp / "floor"
    inc = ["-I", str(ROOT / "csrc" / "include"), "-I", str(ROOT / "csrc" / "src")]
    r = subprocess.run([cc, "-std=c99", "-O2", *inc,
                        str(HERE / "floor.c"),
                        *objs, "-lm", "-o", str(exe)], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr[-500:]
    return exe, ""


def c_floors(cell: str, H: int, exe: Path | None) -> dict:
    """floor.c's figures: the independent int8 / fp32 matrix-vector floor of the step's weights
    (``q8_gemv_us``, ``f32_gemv_us``), rnncore's own GEMV rows (``rnncore_*_gemv_us``) and the
    peak MAC rates."""
    if exe is None:
        return {}
    r = subprocess.run([str(exe), "--cell", cell, "--hidden", str(H)], capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout)[-500:]}
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        return {"error": r.stdout[-500:]}


# ----------------------------------------------------------------------------------- timing

def calibrate(fn: Callable[[], object], target_s: float) -> int:
    """Calls of `fn` that take about `target_s` seconds."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= target_s / 4 or n >= 1 << 20:
            return max(1, int(n * target_s / max(dt, 1e-9)))
        n *= 4


def timer_overhead_ns() -> float:
    """Median cost of the two perf_counter_ns() calls that bracket every timed call."""
    pc = time.perf_counter_ns
    d = []
    for _ in range(20000):
        t0 = pc()
        d.append(pc() - t0)
    return float(np.median(d))


def time_interleaved(fns: dict[str, Callable[[], object]], rounds: int, target_s: float) -> dict:
    """Per-call latency of each callable: every call is timed on its own (perf_counter_ns, minus
    the timer's own median cost), rounds interleave the engines (rotating the start), and the
    statistics pool the calls of all rounds: median, min, p90 (seconds). Timing calls one by one
    keeps a preempted call (a busy machine) from spreading into its neighbours' times."""
    ns = {k: max(1, calibrate(f, target_s)) for k, f in fns.items()}
    over = timer_overhead_ns()
    pc = time.perf_counter_ns
    samples: dict[str, list[int]] = {k: [] for k in fns}
    keys = list(fns)
    for r in range(rounds):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            f, out = fns[k], samples[k]
            for _ in range(ns[k]):
                t0 = pc()
                f()
                out.append(pc() - t0)
    res = {}
    for k, v in samples.items():
        a = (np.asarray(v, np.float64) - over) * 1e-9
        res[k] = {"median": float(np.median(a)), "min": float(np.min(a)), "p90": float(np.percentile(a, 90)),
                  "calls": len(v), "rounds": rounds, "timer_overhead_ns": over}
    return res


# ----------------------------------------------------------------------------------- checks

TOL = {"fp32": 2e-4, "bf16": 6e-2, "int8": 6e-2}


def check_case(case: Case, ref: dict, inp: dict) -> bool:
    """Max |difference| to PyTorch fp32 on the stream (state carried), seq and batch outputs."""
    ok = True
    for name, fn, want in (("stream", case.stream, ref["stream"]), ("seq", case.seq, ref["seq"]),
                           ("batch", case.batch, ref["batch"])):
        if fn is None:
            continue
        got = fn(inp["stream"]) if name == "stream" else fn()
        got = np.asarray(got, np.float32).reshape(want.shape)
        err = float(np.max(np.abs(got - want)))
        case.errors[name] = err
        ok &= bool(err <= TOL[case.precision])
    return ok


# ----------------------------------------------------------------------------------- report

def fmt_us(s: float) -> str:
    us = s * 1e6
    return f"{us:.2f}" if us < 100 else f"{us:.0f}"


def write_markdown(res: dict, path: Path) -> None:
    L = [f"# Peer benchmark ({res['cpu']})", "",
         f"Command: `{res['command']}`  ", f"Date: {res['date']}; pinned CPU {res['pinned_cpu']}, "
         "one thread per engine; median [min, p90] of per-call times over interleaved rounds. "
         "Errors are max |y - PyTorch fp32| over the checked outputs.", ""]
    for fig, title, unit in (("step", "Streaming step, batch 1 (us per step)", "us"),
                             ("seq", "One sequence T=100, batch 1 (us per call)", "us"),
                             ("batch", "Batch 64 x T=100 (ms per call; sequences/s)", "ms")):
        L += [f"## {title}", ""]
        for cell in res["cells"]:
            Hs = res["hidden"]
            L += [f"### {cell.upper()}", "", "| engine | " + " | ".join(f"H={h}" for h in Hs) + " |",
                  "|---|" + "---|" * len(Hs)]
            engines = []
            for h in Hs:
                for e in res["runs"][cell][str(h)]["timings"].get(fig, {}):
                    if e not in engines:
                        engines.append(e)
            for e in engines:
                row = [e]
                for h in Hs:
                    t = res["runs"][cell][str(h)]["timings"].get(fig, {}).get(e)
                    if t is None:
                        row.append("—")
                    elif unit == "ms":
                        row.append(f"{t['median'] * 1e3:.2f} [{t['min'] * 1e3:.2f}, {t['p90'] * 1e3:.2f}]"
                                   f"; {64 / t['median']:.0f}/s")
                    else:
                        row.append(f"{fmt_us(t['median'])} [{fmt_us(t['min'])}, {fmt_us(t['p90'])}]")
                L.append("| " + " | ".join(row) + " |")
            if fig == "step":
                # runs before floor.c had its own kernel (no "floor_variant") timed rnncore's rows
                indep = any("floor_variant" in res["runs"][cell][str(h)].get("floor", {}) for h in Hs)
                kind = ("W_ih,W_hh as one product (independent kernel)" if indep
                        else "W_ih,W_hh (rnncore's kernel, best ISA)")
                for key, label in (("q8_gemv_us", f"floor: int8 matvec {kind}"),
                                   ("f32_gemv_us", f"floor: fp32 matvec {kind}"),
                                   ("rnncore_q8_gemv_us", "rnncore q8 GEMV rows W_ih,W_hh (C, no step)"),
                                   ("rnncore_f32_gemv_us", "rnncore f32 GEMV rows W_ih,W_hh (C, no step)")):
                    row = [label]
                    for h in Hs:
                        fl = res["runs"][cell][str(h)].get("floor", {})
                        row.append(f"{fl[key]:.2f}" if key in fl else "—")
                    L.append("| " + " | ".join(row) + " |")
            L.append("")
    L += ["## Checks (max |error| vs PyTorch fp32; engines over tolerance are not timed)", "",
          "| cell | H | engine | stream | seq | batch | ok |", "|---|---|---|---|---|---|---|"]
    for cell in res["cells"]:
        for h in res["hidden"]:
            for e, c in res["runs"][cell][str(h)]["checks"].items():
                er = c["errors"]
                L.append(f"| {cell} | {h} | {e} | " + " | ".join(
                    f"{er[k]:.1e}" if k in er else "—" for k in ("stream", "seq", "batch"))
                    + f" | {'yes' if c['ok'] else 'NO: ' + c.get('why', '')} |")
    L += ["", "## Issue 9 targets on this run", ""] + targets(res)
    skipped = res.get("skipped", {})
    if skipped:
        L += ["", "## Not run", ""] + [f"- {k}: {v}" for k, v in skipped.items()]
    if res.get("peak"):
        L += ["", f"Machine peaks (floor.c register loops, GMAC/s): {json.dumps(res['peak'])}"]
    path.write_text("\n".join(L) + "\n")


def targets(res: dict) -> list[str]:
    """Issue 9's targets evaluated on this run (rnncore = the default, best ISA path)."""
    best = res.get("rnncore_best_isa")
    if not best:
        return ["rnncore was not timed: no targets evaluated"]
    q8, f32 = f"rnncore q8 {best}", None
    L = [f"rnncore rows used: `{q8}` and the f32 row of the same path's f32 kernels", ""]
    L += ["| target | cell | H | rnncore | reference | ratio | met |", "|---|---|---|---|---|---|---|"]

    def med(cell, h, fig, eng):
        t = res["runs"][cell][str(h)]["timings"].get(fig, {}).get(eng)
        return None if t is None else t["median"]

    def others(cell, h, fig):
        return {e: v["median"] for e, v in res["runs"][cell][str(h)]["timings"].get(fig, {}).items()
                if not e.startswith("rnncore")}

    for cell in res["cells"]:
        f32 = next((e for h in res["hidden"] for e in res["runs"][cell][str(h)]["timings"].get("step", {})
                    if e.startswith("rnncore f32")
                    and e.split()[-1] in (best, "avx512" if best == "avx512vnni" else best,
                                          "avx2" if best == "avxvnni" else best)), None)
        for h in res["hidden"]:
            ours, oth = med(cell, h, "step", q8), others(cell, h, "step")
            if ours is None or not oth:
                continue
            fe, fv = min(oth.items(), key=lambda kv: kv[1])
            if h <= 128:
                r = fv / ours
                L.append(f"| q8 step >= 3x fastest other (H<=128) | {cell} | {h} | {ours * 1e6:.2f} us | "
                         f"{fe} {fv * 1e6:.2f} us | {r:.1f}x | {'yes' if r >= 3 else 'NO'} |")
            else:
                r = fv / ours
                L.append(f"| q8 step faster than every other (H>=256) | {cell} | {h} | {ours * 1e6:.2f} us | "
                         f"{fe} {fv * 1e6:.2f} us | {r:.2f}x | {'yes' if r > 1 else 'NO'} |")
                fl = res["runs"][cell][str(h)].get("floor", {}).get("q8_gemv_us")
                if fl:
                    r = ours * 1e6 / fl
                    ok = "yes" if r <= 1.3 else "NO"
                    L.append(f"| q8 step <= 1.3x int8 matvec floor (H>=256) | {cell} | {h} | "
                             f"{ours * 1e6:.2f} us | floor {fl:.2f} us | {r:.2f}x | {ok} |")
            if h >= 128 and f32:
                fo = med(cell, h, "step", f32)
                fl = res["runs"][cell][str(h)].get("floor", {}).get("f32_gemv_us")
                if fo and fl:
                    r = fo * 1e6 / fl
                    L.append(f"| f32 step <= 1.3x fp32 matvec floor (H>=128) | {cell} | {h} | "
                             f"{fo * 1e6:.2f} us ({f32}) | floor {fl:.2f} us | {r:.2f}x | "
                             f"{'yes' if r <= 1.3 else 'NO'} |")
        if "256" in res["runs"][cell]:
            ours, oth = med(cell, 256, "seq", q8), others(cell, 256, "seq")
            if ours and oth:
                fe, fv = min(oth.items(), key=lambda kv: kv[1])
                r = fv / ours
                L.append(f"| T=100 batch 1 q8 >= 1.5x fastest other | {cell} | 256 | {ours * 1e6:.0f} us | "
                         f"{fe} {fv * 1e6:.0f} us | {r:.1f}x | {'yes' if r >= 1.5 else 'NO'} |")
        for h in res["hidden"]:
            ours = med(cell, h, "batch", q8)
            if ours is None:
                continue
            tq = med(cell, h, "batch", f"PyTorch {'GRU' if cell == 'gru' else 'LSTM'} dyn-int8")
            tv = med(cell, h, "batch", "OpenVINO f32")
            if tq:
                r = tq / ours
                ok = "yes" if r >= 2 else "NO"
                L.append(f"| batch 64xT=100 q8 >= 2x PyTorch dyn-int8 throughput | {cell} | {h} | "
                         f"{ours * 1e3:.1f} ms | {tq * 1e3:.1f} ms | {r:.2f}x | {ok} |")
            if tv:
                r = tv / ours
                ok = "yes" if r >= 1 else "NO"
                L.append(f"| batch 64xT=100 q8 >= OpenVINO f32 throughput | {cell} | {h} | "
                         f"{ours * 1e3:.1f} ms | {tv * 1e3:.1f} ms | {r:.2f}x | {ok} |")
    return L


def plot(res: dict, path: Path) -> None:
    """Step latency against H (log-log), one line per engine: peers thin and dashed, rnncore bold,
    the machine floors dotted black (int8) and dash-dotted grey (fp32)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = res["cells"]
    fig, axes = plt.subplots(1, len(cells), figsize=(8 * len(cells), 6.5), squeeze=False)
    peer_colors = plt.get_cmap("tab20").colors
    ours = {"q8": ["#d62728", "#ff7f0e", "#8c564b", "#e377c2"], "f32": ["#1f77b4", "#17becf", "#2ca02c"]}
    for ax, cell in zip(axes[0], cells, strict=True):
        Hs = res["hidden"]
        engines = []
        for h in Hs:
            for e in res["runs"][cell][str(h)]["timings"].get("step", {}):
                if e not in engines:
                    engines.append(e)
        npeer, nq8, nf32 = 0, 0, 0
        for e in engines:
            xs, ys = [], []
            for h in Hs:
                t = res["runs"][cell][str(h)]["timings"].get("step", {}).get(e)
                if t:
                    xs.append(h)
                    ys.append(t["median"] * 1e6)
            if e.startswith("rnncore q8"):
                ax.plot(xs, ys, "-o", color=ours["q8"][nq8 % 4], lw=2.5, ms=6, label=e, zorder=5)
                nq8 += 1
            elif e.startswith("rnncore"):
                ax.plot(xs, ys, "-s", color=ours["f32"][nf32 % 3], lw=2.0, ms=5, label=e, zorder=4)
                nf32 += 1
            else:
                ax.plot(xs, ys, "--", marker="x", color=peer_colors[(2 * npeer + 1) % 20], lw=1, ms=4,
                        label=e)
                npeer += 1
        for key, label, style in (("q8_gemv_us", "floor: int8 matvec (independent kernel)", ":"),
                                  ("f32_gemv_us", "floor: fp32 matvec (independent kernel)", "-.")):
            xs = [h for h in Hs if key in res["runs"][cell][str(h)].get("floor", {})]
            if xs:
                ax.plot(xs, [res["runs"][cell][str(h)]["floor"][key] for h in xs], style,
                        color="black" if "q8" in key else "grey", lw=1.5, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(Hs, [str(h) for h in Hs])
        ax.set_xlabel("hidden size H (= input size)")
        ax.set_ylabel("step latency, batch 1 (us, log scale)")
        ax.set_title(f"{cell.upper()} streaming step (Python call, state carried)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.suptitle(f"{res['cpu']}, one pinned core, one thread ({res['date']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


# ----------------------------------------------------------------------------------- main

ENGINES = ("torch", "ort", "openvino", "ncnn", "litert", "rnncore")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="results folder (created)")
    ap.add_argument("--replot", metavar="RESULTS_JSON",
                    help="only redraw step_latency.png next to a results.json of an earlier run")
    ap.add_argument("--cpu", type=int, default=None, help="core to pin (default: last allowed)")
    ap.add_argument("--hidden", default="32,64,128,256,512")
    ap.add_argument("--cells", default="gru,lstm")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--isas", default="auto",
                    help="rnncore ISAs to time (comma list) or 'auto' = every one this CPU runs")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--batch-rounds", type=int, default=3)
    ap.add_argument("--target-ms", type=float, default=10.0, help="duration of one sample burst")
    ap.add_argument("--figures", default="step,seq,batch")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.replot:
        src = Path(args.replot)
        plot(json.loads(src.read_text()), src.with_name("step_latency.png"))
        print(f"wrote {src.with_name('step_latency.png')}")
        return 0
    if not args.out:
        ap.error("--out is required (or --replot RESULTS_JSON)")

    allowed = sorted(os.sched_getaffinity(0))
    cpu = args.cpu if args.cpu is not None else allowed[-1]
    os.sched_setaffinity(0, {cpu})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    Hs = [int(h) for h in args.hidden.split(",")]
    cells = args.cells.split(",")
    engines = args.engines.split(",")
    figures = args.figures.split(",")
    res: dict = {"cpu": cpu_name(), "pinned_cpu": cpu, "hidden": Hs, "cells": cells,
                 "command": " ".join([Path(sys.executable).name] + sys.argv),
                 "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": {},
                 "skipped": {}, "versions": {}}
    for mod in ("torch", "onnxruntime", "openvino", "ncnn", "ai_edge_litert", "numpy", "rnncore"):
        try:
            res["versions"][mod] = str(__import__(mod).__version__)
        except Exception as e:  # noqa: BLE001 - report what is missing, do not stop
            res["versions"][mod] = f"missing ({type(e).__name__})"
    isas = []
    if "rnncore" in engines:
        try:
            import rnncore as rc

            isas = rc.isa()["available"] if args.isas == "auto" else args.isas.split(",")
            isas = [i for i in isas if i != "generic"] or isas  # generic: not a contender
            res["rnncore_best_isa"] = rc.isa()["best"]
        except Exception as e:  # noqa: BLE001
            res["skipped"]["rnncore"] = f"{type(e).__name__}: {e}"
    if res["skipped"].get("rnncore") is None and "rnncore" in engines and not isas:
        res["skipped"]["rnncore"] = "no ISA available"
    tmp = Path(tempfile.mkdtemp(prefix="rnncore-peers-"))
    floor_exe, why = build_floor(tmp)
    if floor_exe is None:
        res["skipped"]["floors"] = why
    for cell in cells:
        res["runs"][cell] = {}
        for H in Hs:
            w = make_weights(cell, H, args.seed + H)
            inp = make_inputs(H, args.seed + 1000 + H)
            ref = torch_reference(cell, w, inp)
            cases: list[Case] = []
            makers = {"torch": lambda c, w, i: torch_cases(c, w, i),
                      "ort": lambda c, w, i: ort_cases(c, w, i, tmp),
                      "openvino": lambda c, w, i: openvino_cases(c, w, i, tmp),
                      "ncnn": lambda c, w, i: ncnn_cases(c, w, i, tmp),
                      "litert": lambda c, w, i: litert_cases(c, w, i, tmp, sys.executable),
                      "rnncore": lambda c, w, i: rnncore_cases(c, w, i, isas)}
            for e in engines:
                if e in res["skipped"]:
                    continue
                try:
                    cases += makers[e](cell, w, inp)
                except Exception as ex:  # noqa: BLE001 - an engine that cannot run is reported
                    res["skipped"][f"{e} ({cell} H={H})"] = f"{type(ex).__name__}: {str(ex)[:300]}"
            run = {"checks": {}, "timings": {}, "notes": {}}
            good = []
            for c in cases:
                try:
                    ok = check_case(c, ref, inp)
                    why = "" if ok else f"error over {TOL[c.precision]}"
                except Exception as ex:  # noqa: BLE001
                    ok, why = False, f"{type(ex).__name__}: {str(ex)[:200]}"
                run["checks"][c.engine] = {"ok": ok, "errors": c.errors, "why": why}
                run["notes"][c.engine] = c.note
                if ok:
                    good.append(c)
            for fig in figures:
                fns = {c.engine: getattr(c, fig) for c in good if getattr(c, fig) is not None}
                if not fns:
                    continue
                rounds = args.batch_rounds if fig == "batch" else args.rounds
                target = args.target_ms / 1e3 * (5 if fig == "batch" else 1)
                run["timings"][fig] = time_interleaved(fns, rounds, target)
            run["floor"] = c_floors(cell, H, floor_exe)
            if "peak" in run["floor"]:
                res["peak"] = run["floor"]["peak"]
            res["runs"][cell][str(H)] = run
            print(f"{cell} H={H}: " + ", ".join(
                f"{k} {v['median'] * 1e6:.1f}us" for k, v in run["timings"].get("step", {}).items()),
                flush=True)
            (out / "results.json").write_text(json.dumps(res, indent=1))
    write_markdown(res, out / "results.md")
    plot(res, out / "step_latency.png")
    print(f"wrote {out / 'results.md'} and {out / 'step_latency.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
