"""Transcribe ONNX Runtime's own RNN/GRU/LSTM operator tests into tests/data/ort_rnn_cases.json.

Usage::

    python3 tools/ort_rnn_cases.py SRC_DIR [OUT.json]

``SRC_DIR`` holds the three test sources of ``microsoft/onnxruntime`` (MIT licence, Copyright (c)
Microsoft Corporation), ``onnxruntime/test/providers/cpu/rnn/``:

* ``deep_cpu_gru_op_test.cc`` (commit fa5fed611015346bcb3d19c57b478433ce8c9522),
* ``deep_cpu_lstm_op_test.cc`` (commit f8b74ff7723b6e421b2cb37a824b64a2cc4647d6),
* ``rnn_op_test.cc`` (commit 2cd1ea852dbdcd5bae32090d5fabc0144ab68750).

Their code is not copied into rnncore; only the test vectors are, as data (inputs, weights,
attributes and the expected outputs written in the C++ source), with the attribution above.

How the sources are read. Every ``TEST(Suite, Name)`` body (and the helper functions and test
contexts they call) is scanned in source order for the statements the tests are written in:
vector literals (``std::vector<float> X = {...}``, ``X{...}``, ``X({...})``, reassignments),
fill constructors (``R_data(n, 0.1f)``, ``initial_h(32)``), fill loops
(``for (int i = a; i < b; i++) { v[i] = c; }``), copies (``expected_Y_h(expected_Y)``), scalars,
the CNTK layout transposes of rnn_op_test.cc, and the calls of the harness (``RunGruTest``,
``DefaultActivationsSimpleWeights*``, ``DeepCpuGruOpTestContext::RunTest``, ``RunLstmTest``,
``SimpleWeightsNoBiasTwoRows``, ``LargeBatchWithClip``, ``LstmOpContext2x1x2x2::RunTest``, and
the inline ``OpTester`` calls ``AddAttribute`` / ``AddInput`` / ``AddOutput`` / ``Run``). Each
call of the harness becomes one case with the attributes, inputs and outputs the harness gives
the ``OpTester`` (which optional outputs it requests, when it sets ``clip``, how it duplicates
activations for two directions) — the harness functions are re-stated below in Python, each
next to the C++ function it follows.

What is written by hand (checked against the source text, which must contain the quoted lines):

* the weights of ``DeepCpuGruOpTestContext`` with ``large_hidden`` (built by loops in the
  context's constructor) and the input of ``LargeBatchWithClip`` (``std::generate_n``);
* the three tests built with lambdas in rnn_op_test.cc
  (``DISABLED_RNN_default_attributes_and_forward_direction``,
  ``DISABLED_RNN_reverse_direction``, ``RNN_invalid_sequence_lens``) and ``SharedPrepackedWeights``
  (an inline ``OpTester`` with pre-packed shared initializers): their literals are parsed, the
  control flow around them is followed here.

Runs that ONNX Runtime repeats with only a difference that does not exist for an ONNX model
(``is_initializer`` of W/R, i.e. weights as graph inputs or initializers) are written once, with
``repeats`` counting them.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import numpy as np

FILES = {
    "GRU": ("deep_cpu_gru_op_test.cc", "fa5fed611015346bcb3d19c57b478433ce8c9522"),
    "LSTM": ("deep_cpu_lstm_op_test.cc", "f8b74ff7723b6e421b2cb37a824b64a2cc4647d6"),
    "RNN": ("rnn_op_test.cc", "2cd1ea852dbdcd5bae32090d5fabc0144ab68750"),
}
# OpTester's float comparison (onnxruntime/test/providers/checkers.cc, DefaultTolerance<float>):
# |actual - expected| <= absolute + relative * |expected|; RunLstmTest sets the absolute part to
# 1e-4 (test.SetOutputTolerance(0.0001f)).
TOLERANCE = {
    "GRU": {"atol": 1e-5, "rtol": 1e-4},
    "LSTM": {"atol": 1e-4, "rtol": 1e-4},
    "RNN": {"atol": 1e-5, "rtol": 1e-4},
}


# -- reading C++ ---------------------------------------------------------------------------------
def strip_comments(src: str) -> str:
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c == '"':
            j = i + 1
            while src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append(src[i : j + 1])
            i = j + 1
        elif src.startswith("//", i):
            i = src.index("\n", i)
        elif src.startswith("/*", i):
            i = src.index("*/", i) + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def preprocess(src: str) -> str:
    """Comments out; of ``#if defined(USE_CUDA) && defined(_WIN32) A #else B #endif`` keep B (CPU)."""
    src = strip_comments(src)
    src = re.sub(
        r"#if defined\(USE_CUDA\) && defined\(_WIN32\)\n[^\n]*\n#else\n([^\n]*\n)#endif\n", r"\1", src
    )
    return re.sub(r"#(ifndef|endif)[^\n]*\n", "", src)


def block(src: str, start: int) -> str:
    """The text between the brace at or after ``start`` and its matching brace."""
    i = src.index("{", start)
    depth = 0
    for j in range(i, len(src)):
        if src[j] == "{":
            depth += 1
        elif src[j] == "}":
            depth -= 1
            if depth == 0:
                return src[i + 1 : j]
    raise ValueError("unbalanced braces")


def tests_of(src: str) -> list[tuple[str, str, str]]:
    return [
        (m.group(1), m.group(2), block(src, m.end() - 1))
        for m in re.finditer(r"\bTEST\((\w+),\s*(\w+)\)\s*\{", src)
    ]


def function(src: str, header: str) -> str:
    m = re.search(re.escape(header), src)
    if not m:
        raise ValueError(f"{header!r} not found")
    return block(src, m.end())


def split_args(s: str) -> list[str]:
    args, depth, cur, instr = [], 0, [], False
    for c in s:
        if c == '"':
            instr = not instr
        if not instr:
            if c in "({[":
                depth += 1
            elif c in ")}]":
                depth -= 1
            elif c == "," and depth == 0:
                args.append("".join(cur).strip())
                cur = []
                continue
        cur.append(c)
    if "".join(cur).strip():
        args.append("".join(cur).strip())
    return args


def number(tok: str) -> float:
    t = tok.strip()
    t = re.sub(r"(?<=[0-9.])[fF]$", "", t)
    return float(t)


def literal(body: str, env: dict | None = None) -> list:
    """The items of a brace list: strings, numbers, or (with ``env``) names of scalars."""
    items = split_args(body)
    if items and items[0].startswith('"'):
        return [it.strip('"') for it in items]
    return [env.value(it) if env is not None else number(it) for it in items]


# -- interpreting a body ---------------------------------------------------------------------------
EVENTS = [
    (
        "vec",
        r"(?:std::vector<(?:float|int|std::string)>\s+)?(?P<name>\w+)\s*(?:=\s*)?\(?\{(?P<body>[^{}]*)\}\)?\s*;",
    ),
    (
        "fill",
        r"std::vector<(?:float|int)>\s+(?P<name>\w+)\((?P<n>[^,()]+(?:\([^()]*\))?[^,()]*),\s*(?P<v>[^;]+?)\);",
    ),
    ("sized", r"std::vector<float>\s+(?P<name>\w+)\((?P<n>[\w\s*]+)\);"),
    (
        "loop",
        r"for \(int i = (?P<a>\d+); i < (?P<b>\d+); i\+\+\) \{\s*(?P<name>\w+)\[i\] = (?P<v>[-\w.+]+);\s*\}",
    ),
    ("scalar", r"(?:const\s+|constexpr\s+)*(?:int64_t|int|bool|float)\s+(?P<decls>\w+\s*=[^;]+);"),
    ("assign", r"^\s*(?P<name>batch_size|seq_lengths)\s*=\s*(?P<v>[^;{]+);"),
    ("string", r"(?:const\s+)?std::string\s+(?P<name>\w+)\s*=\s*\"(?P<v>\w+)\";"),
    (
        "tin",
        r"MemoryLayoutTransposeRNNInputCNTKToONNXRuntime\(&(?P<src>\w+)\[0\], &(?P<dst>\w+)\[0\], "
        r"(?P<args>[^)]*)\);",
    ),
    (
        "tout",
        r"MemoryLayoutTransposeRNNOutputCNTKToONNXRuntime\(&(?P<src>\w+)\[0\], &(?P<dst>\w+)\[0\],\s*"
        r"(?P<args>[^)]*)\);",
    ),
    (
        "call",
        r"(?P<fn>(?:ctx|context)\.RunTest|DefaultActivationsSimpleWeightsNoBias|DefaultActivationsSimpleWeightsWithBias"
        r"|SimpleWeightsNoBiasTwoRows|LargeBatchWithClip|RunLstmTest|RunGruTest|DeepCpuGruOpTestContext ctx"
        r"|LstmOpContext2x1x2x2 context|test\.AddAttribute(?:<[\w:<>]*>)?"
        r"|test\.AddInput<\w+>|test\.AddOutput<\w+>"
        r"|test\.AddOptional\w+Edge<\w+>|test\.AddMissingOptional\w+<\w+>|test\.Run)\((?P<args>[^;]*)\);",
    ),
]
PATTERNS = [(k, re.compile(p, re.M)) for k, p in EVENTS]


def statements(body: str):
    """The matches of EVENTS in source order; overlapping ones resolved as one alternation would."""
    found = sorted((m.start(), i, k, m) for i, (k, p) in enumerate(PATTERNS) for m in p.finditer(body))
    end = 0
    for start, _, kind, m in found:
        if start >= end:
            end = m.end()
            yield kind, m


class Env(dict):
    def value(self, tok: str):
        tok = tok.strip()
        if tok.startswith("&"):
            tok = tok[1:]
        if tok in ("nullptr",):
            return None
        if tok in ("true", "false"):
            return tok == "true"
        if tok == "{}":
            return []
        if tok.startswith('"'):
            return tok.strip('"')
        if tok.startswith("{"):
            return literal(tok[1:-1])
        if tok.startswith("vector<string>("):
            n, s = split_args(tok[len("vector<string>(") : -1])
            return [s.strip('"')] * int(self.value(n))
        if tok.startswith("vector<string>{"):
            return literal(tok[len("vector<string>{") : -1])
        if re.fullmatch(r"\(int\)\w+", tok):
            return int(self.value(tok[5:]))
        if tok in self:
            return copy.deepcopy(self[tok])
        if re.fullmatch(r"[\w\s*()-]+", tok) and any(w in self for w in re.findall(r"[A-Za-z_]\w*", tok)):
            return eval(tok, {"__builtins__": {}}, dict(self))  # scalar arithmetic: batch_size * seq_length
        return number(tok)


def interpret(body: str, env: Env | None = None, on_call=None) -> Env:
    """Run the statements of ``body`` in order; ``on_call(fn, args, env)`` for every harness call."""
    env = Env() if env is None else env
    for kind, m in statements(body):
        g = m.groupdict()
        if kind in ("vec", "fill", "sized", "scalar"):
            # declarations the cases do not use may not be plain data (``int num_directions =
            # direction == "bidirectional" ? 2 : 1;`` in a helper): the name is dropped (no stale
            # value survives a failed reassignment); a case that needs it fails on the missing name
            try:
                _declare(kind, g, env)
            except (ValueError, NameError, KeyError, SyntaxError, TypeError):
                names = (
                    [g["name"]]
                    if g.get("name")
                    else [d.split("=", 1)[0].strip() for d in split_args(g["decls"])]
                )
                for name in names:
                    env.pop(name, None)
        elif kind == "loop":
            v = number(g["v"])
            for i in range(int(g["a"]), int(g["b"])):
                env[g["name"]][i] = v
        elif kind == "assign":
            env[g["name"]] = env.value(g["v"])
        elif kind == "string":
            env[g["name"]] = g["v"]
        elif kind in ("tin", "tout"):
            dims = [int(env.value(a)) for a in split_args(g["args"])]
            src = np.asarray(env[g["src"]])
            if kind == "tin":  # CNTK (batch, seq, feature) -> ONNX (seq, batch, feature)
                S, B, F = dims
                env[g["dst"]] = src.reshape(B, S, F).transpose(1, 0, 2).ravel().tolist()
            else:  # CNTK (batch, seq, dir, hidden) -> ONNX (seq, dir, batch, hidden)
                S, D, B, H = dims
                env[g["dst"]] = src.reshape(B, S, D, H).transpose(1, 2, 0, 3).ravel().tolist()
        elif kind == "call" and on_call is not None:
            fn = re.sub(r"^test\.AddAttribute<.*>$", "test.AddAttribute", g["fn"])
            on_call(fn, split_args(g["args"]), env)
    return env


def _declare(kind: str, g: dict, env: Env) -> None:
    if kind == "vec":
        env[g["name"]] = literal(g["body"], env)
    elif kind == "fill":
        env[g["name"]] = [env.value(g["v"])] * int(env.value(g["n"]))
    elif kind == "sized":
        n = env.value(g["n"])
        env[g["name"]] = [0.0] * int(n) if isinstance(n, (int, float)) else list(n)
    else:
        for d in split_args(g["decls"]):
            k, v = (s.strip() for s in d.split("=", 1))
            env[k] = env.value(v)


def require(src: str, *lines: str) -> None:
    """The hand-written parts below follow these source lines: stop if they changed."""
    for line in lines:
        if line not in src:
            raise ValueError(f"source changed, re-check the hand transcription: {line!r} not found")


# -- the harness, in Python ------------------------------------------------------------------------
def f32(v):
    """Each value rounded to float32 (as the C++ float vectors), written in its shortest float32 form."""
    return [float(str(np.float32(x))) for x in v]


def tensor(shape, data, dtype="float32"):
    shape = [int(s) for s in shape]
    assert int(np.prod(shape)) == len(data), (shape, len(data))
    return {
        "shape": shape,
        "dtype": dtype,
        "data": [int(x) for x in data] if dtype == "int32" else list(data),
    }


def run_gru_test(
    X,
    W,
    R,
    Y,
    Y_h,
    I,
    B,
    H,
    T,
    Bias=None,
    h0=None,
    seq=None,
    direction="forward",
    clip=9999.0,
    output_sequence=True,
    linear_before_reset=False,
    activations=("sigmoid", "tanh"),
    alphas=(),
    betas=(),
):
    """deep_cpu_gru_op_test.cc: RunGruTest."""
    D = 2 if direction == "bidirectional" else 1
    acts = list(activations) * (2 if D == 2 and len(activations) == 2 else 1)
    attrs = {"activations": acts}
    if alphas:
        attrs["activation_alpha"] = list(alphas)
    if betas:
        attrs["activation_beta"] = list(betas)
    attrs.update(direction=direction, hidden_size=int(H), linear_before_reset=int(bool(linear_before_reset)))
    if clip < 999.0:
        attrs["clip"] = clip
    inputs = {"X": tensor((T, B, I), X), "W": tensor((D, 3 * H, I), W), "R": tensor((D, 3 * H, H), R)}
    if Bias is not None:
        inputs["B"] = tensor((D, 6 * H), Bias)
    if seq is not None:
        inputs["sequence_lens"] = tensor((B,), seq, "int32")
    if h0 is not None:
        inputs["initial_h"] = tensor((D, B, H), h0)
    outputs = {}
    if output_sequence:
        outputs["Y"] = tensor((T, D, B, H), Y)
    if Y_h:
        outputs["Y_h"] = tensor((D, B, H), Y_h)
    return {"op": "GRU", "attributes": attrs, "inputs": inputs, "outputs": outputs}


def run_lstm_test(
    X,
    W,
    R,
    Y,
    Y_h,
    Y_c,
    I,
    B,
    H,
    T,
    Bias=None,
    P=None,
    h0=None,
    c0=None,
    seq=None,
    direction="forward",
    clip=9999.0,
    output_sequence=True,
    input_forget=False,
    activations=(),
    alphas=(),
    betas=(),
    has_clip=True,
):
    """deep_cpu_lstm_op_test.cc: RunLstmTest (the is_initializer flags left out)."""
    D = 2 if direction == "bidirectional" else 1
    acts = list(activations) or ["sigmoid", "tanh", "tanh"]
    acts = acts * (2 if D == 2 and len(acts) == 3 else 1)
    attrs = {"activations": acts}
    if alphas:
        attrs["activation_alpha"] = list(alphas)
    if betas:
        attrs["activation_beta"] = list(betas)
    attrs.update(direction=direction, hidden_size=int(H), input_forget=int(bool(input_forget)))
    if has_clip:
        attrs["clip"] = clip
    inputs = {"X": tensor((T, B, I), X), "W": tensor((D, 4 * H, I), W), "R": tensor((D, 4 * H, H), R)}
    if Bias is not None:
        inputs["B"] = tensor((D, 8 * H), Bias)
    if seq is not None:
        inputs["sequence_lens"] = tensor((B,), seq, "int32")
    if h0:
        inputs["initial_h"] = tensor((D, B, H), h0)
    if c0:
        inputs["initial_c"] = tensor((D, B, H), c0)
    if P:
        inputs["P"] = tensor((D, 3 * H), P)
    outputs = {}
    if output_sequence and Y:
        outputs["Y"] = tensor((T, D, B, H), Y)
    if Y_h:
        outputs["Y_h"] = tensor((D, B, H), Y_h)
    if Y_c:
        outputs["Y_c"] = tensor((D, B, H), Y_c)
    return {"op": "LSTM", "attributes": attrs, "inputs": inputs, "outputs": outputs}


def positional(fn, args, env, names, defaults):
    vals = dict(defaults)
    for k, a in zip(names, args, strict=False):
        vals[k] = env.value(a)
    return vals


# -- deep_cpu_gru_op_test.cc -----------------------------------------------------------------------
def gru_cases(src: str):
    helper_nb = function(src, "void DefaultActivationsSimpleWeightsNoBias(")
    helper_wb = function(src, "void DefaultActivationsSimpleWeightsWithBias(")
    ctor = function(src, "DeepCpuGruOpTestContext::DeepCpuGruOpTestContext(")
    require(
        helper_nb,
        "int batch_size = linear_before_reset ? 3 : 2;",
        "if (linear_before_reset) {",
        "std::copy(W_data.cbegin(), W_data.cend(), std::back_inserter(W_data));",
    )
    require(
        helper_wb,
        "int batch_size = one_row ? 1 : 2;",
        "if (batch_size == 2)",
        "duplicate_data(W_data);",
        "duplicate_data(B_data);",
    )
    x_lit = [literal(m.group(1)) for m in re.finditer(r"X_data = \{([^{}]*)\};", helper_nb)]
    nb = interpret(helper_nb)
    x_wb = [literal(m.group(1)) for m in re.finditer(r"X_data = \{([^{}]*)\};", helper_wb)]
    wb = interpret(helper_wb)
    # the context's weights: the literals (bidirectional = the unidirectional ones twice)
    lits = {}
    for m in re.finditer(r"(gru_\w+_)\s*=\s*\{([^{}]*)\};", ctor):
        lits.setdefault(m.group(1), []).append(literal(m.group(2)))
    for k, (bi, uni) in lits.items():
        assert bi == uni + uni, k
    require(src, "hidden_dim_(large_hidden ? 32 : 2)")
    require(
        ctor,
        "gru_input_weights[i] = 0.1f;",
        "gru_input_weights[i + input_weight_block_size] = 0.2f;",
        "gru_input_weights[i + 2 * input_weight_block_size] = 0.3f;",
        "gru_hidden_weights[diag_index] = 0.1f + 0.1f * (i % 2);",
        "gru_hidden_weights[diag_index + hidden_weight_block_size] = 0.1f + 0.1f * (i % 3);",
        "gru_hidden_weights[diag_index + 2 * hidden_weight_block_size] = 0.1f + 0.1f * (i % 5);",
        "gru_bias[i] = 0.1f;",
        "gru_bias[i + hidden_dim_] = 0.2f;",
        "gru_bias[i + 2 * hidden_dim_] = 0.3f;",
        "gru_bias[i + 3 * hidden_dim_] = 0.0f;",
    )

    def large_hidden(I, H):
        t = np.float32
        W = np.concatenate([np.full(I * H, t(v), t) for v in (0.1, 0.2, 0.3)])
        R = np.zeros((3, H, H), t)
        for i in range(H):
            for g, mod in enumerate((2, 3, 5)):
                R[g, i, i] = t(0.1) + t(0.1) * t(i % mod)
        Bias = np.concatenate([np.full(H, t(v), t) for v in (0.1, 0.2, 0.3)] + [np.zeros(3 * H, t)])
        return W.tolist(), R.ravel().tolist(), Bias.tolist()

    cases = []

    def on_call(fn, args, env):
        if fn == "DefaultActivationsSimpleWeightsNoBias":
            v = positional(fn, args, env, ["direction", "Y", "Y_h", "lbr"], {"lbr": False})
            D = 2 if v["direction"] == "bidirectional" else 1
            B = 3 if v["lbr"] else 2
            X = x_lit[0] if v["lbr"] else x_lit[1]
            W = nb["W_data"] * D
            R = [0.1] * (D * 3 * 3 * 3)
            common = dict(I=1, B=B, H=3, T=2, direction=v["direction"], linear_before_reset=v["lbr"])
            cases.append(run_gru_test(X, W, R, v["Y"], v["Y_h"], **common))
            if v["Y_h"]:
                cases.append(run_gru_test(X, W, R, v["Y"], v["Y_h"], output_sequence=False, **common))
        elif fn == "DefaultActivationsSimpleWeightsWithBias":
            v = positional(
                fn, args, env, ["direction", "Y", "lbr", "one_row"], {"lbr": False, "one_row": False}
            )
            D = 2 if v["direction"] == "bidirectional" else 1
            B = 1 if v["one_row"] else 2
            X = x_wb[0] if B == 2 else x_wb[1]
            cases.append(
                run_gru_test(
                    X,
                    wb["W_data"] * D,
                    [0.1] * (D * 27),
                    v["Y"],
                    [],
                    I=1,
                    B=B,
                    H=3,
                    T=2,
                    Bias=wb["B_data"] * D,
                    direction=v["direction"],
                    clip=999.0,
                    linear_before_reset=v["lbr"],
                )
            )
        elif fn == "DeepCpuGruOpTestContext ctx":
            v = positional(
                fn,
                args,
                env,
                ["direction", "activations", "use_bias", "alpha", "beta", "large_hidden", "input_size"],
                {"use_bias": True, "alpha": [], "beta": [], "large_hidden": False, "input_size": 2},
            )
            D = 2 if v["direction"] == "bidirectional" else 1
            I = int(v["input_size"])
            H = 32 if v["large_hidden"] else 2
            if v["large_hidden"]:
                W, R, Bias = large_hidden(I, H)
            else:
                W, R, Bias = (
                    lits[k][1] for k in ("gru_input_weights_", "gru_recurrent_weights_", "gru_bias_")
                )
            env["__ctx"] = dict(v, D=D, I=I, H=H, W=W * D, R=R * D, Bias=Bias * D)
        elif fn == "ctx.RunTest":
            c = env["__ctx"]
            v = positional(fn, args, env, ["X", "B", "T", "seq", "h0", "Y", "Y_h", "lbr"], {"lbr": False})
            for output_sequence in (True, False):
                cases.append(
                    run_gru_test(
                        v["X"],
                        c["W"],
                        c["R"],
                        v["Y"],
                        v["Y_h"],
                        c["I"],
                        int(v["B"]),
                        c["H"],
                        int(v["T"]),
                        Bias=c["Bias"] if c["use_bias"] else None,
                        h0=v["h0"],
                        seq=v["seq"],
                        direction=c["direction"],
                        clip=9999999999.0,
                        output_sequence=output_sequence,
                        linear_before_reset=v["lbr"],
                        activations=c["activations"],
                        alphas=c["alpha"],
                        betas=c["beta"],
                    )
                )
        else:
            raise ValueError(f"unexpected call {fn}")

    return cases, on_call


# -- deep_cpu_lstm_op_test.cc ----------------------------------------------------------------------
def lstm_cases(src: str):
    helper = function(src, "void SimpleWeightsNoBiasTwoRows(")
    large = function(src, "static void LargeBatchWithClip(")
    ctx = function(src, "class LstmOpContext2x1x2x2 ")
    require(helper, "W_data = DuplicateContainer(W_data);")
    require(
        large,
        "float i = 0.f, increment = 1.f;",
        "std::generate_n(std::back_inserter(X_data), batch_size * seq_length, "
        "[&]() { return i += increment; });",
    )
    require(
        ctx,
        "input_weights_ = DuplicateContainer(input_weights_);",
        "bias_ = DuplicateContainer(bias_);",
        "recurrent_weights_ = DuplicateContainer(recurrent_weights_);",
        "peephole_weights_ = DuplicateContainer(peephole_weights_);",
        "const int input_size_ = 2;",
        "const int hidden_size_ = 2;",
        "for (bool output_sequence : std::initializer_list<bool>{false, true}) {",
    )
    hw = interpret(helper)
    lg = interpret(large)
    cw = interpret(ctx)
    cases = []

    def simple(direction, Y, Y_h, Y_c, seq=None):
        D = 2 if direction == "bidirectional" else 1
        args = dict(I=1, B=2, H=3, T=2, seq=seq, direction=direction)
        X, W, R = hw["X_data"], hw["W_data"] * D, [0.1] * (D * 4 * 9)
        cases.append(run_lstm_test(X, W, R, Y, Y_h, Y_c, **args))
        if Y_h or Y_c:
            cases.append(run_lstm_test(X, W, R, Y, Y_h, Y_c, clip=999.0, output_sequence=False, **args))

    def on_call(fn, args, env):
        if fn == "SimpleWeightsNoBiasTwoRows":
            v = positional(fn, args, env, ["direction", "Y", "Y_h", "Y_c", "seq"], {"seq": None})
            simple(v["direction"], v["Y"], v["Y_h"], v["Y_c"], v["seq"])
        elif (
            fn == "RunLstmTest"
        ):  # BatchParallelFalseSeqLengthGreaterThanOne, inside the is_initializer loops
            names = ["X", "W", "R", "Y", "Y_h", "Y_c", "I", "B", "H", "T"]
            assert args[2] == "is_initializer_W" and args[4] == "is_initializer_R", args
            v = positional(fn, args[:2] + [args[3]] + args[5:], env, names, {})
            case = run_lstm_test(**v)
            case["repeats"] = 4
            cases.append(case)
        elif fn == "LargeBatchWithClip":
            v = positional(fn, args, env, ["Y_h", "clip"], {"clip": 9999.0})
            X = [float(i) for i in range(1, 32 * 2 + 1)]  # generate_n: i += 1 from 0
            case = run_lstm_test(
                X,
                lg["W_data"],
                [0.1] * 36,
                [],
                v["Y_h"],
                [],
                I=1,
                B=32,
                H=3,
                T=2,
                direction="forward",
                clip=v["clip"],
            )
            case["repeats"] = 4
            cases.append(case)
        elif fn == "LstmOpContext2x1x2x2 context":
            v = positional(
                fn,
                args,
                env,
                ["direction", "activations", "alphas", "betas"],
                {"activations": [], "alphas": [], "betas": []},
            )
            env["__ctx"] = v
        elif fn == "context.RunTest":
            c = env["__ctx"]
            D = 2 if c["direction"] == "bidirectional" else 1
            names = [
                "X",
                "B",
                "T",
                "h0",
                "c0",
                "Y",
                "Y_h",
                "Y_c",
                "seq",
                "use_bias",
                "use_peepholes",
                "clip",
                "input_forget",
                "has_clip",
            ]
            v = positional(
                fn,
                args,
                env,
                names,
                {
                    "Y_h": [],
                    "Y_c": [],
                    "seq": None,
                    "use_bias": True,
                    "use_peepholes": True,
                    "clip": 9999.0,
                    "input_forget": False,
                    "has_clip": True,
                },
            )
            for output_sequence in (False, True):
                cases.append(
                    run_lstm_test(
                        v["X"],
                        cw["input_weights_"] * D,
                        cw["recurrent_weights_"] * D,
                        v["Y"],
                        v["Y_h"],
                        v["Y_c"],
                        2,
                        int(v["B"]),
                        2,
                        int(v["T"]),
                        Bias=cw["bias_"] * D if v["use_bias"] else None,
                        P=cw["peephole_weights_"] * D if v["use_peepholes"] else None,
                        h0=v["h0"],
                        c0=v["c0"],
                        seq=v["seq"],
                        direction=c["direction"],
                        clip=v["clip"],
                        output_sequence=output_sequence,
                        input_forget=v["input_forget"],
                        activations=c["activations"],
                        alphas=c["alphas"],
                        betas=c["betas"],
                        has_clip=v["has_clip"],
                    )
                )
        elif fn.startswith("test."):
            env.setdefault("__optester", []).append((fn, args))
        else:
            raise ValueError(f"unexpected call {fn}")

    return cases, on_call


def shared_prepacked(env):
    """LSTMTest.SharedPrepackedWeights: an inline OpTester (W, R shared pre-packed initializers)."""
    calls = env["__optester"]
    attrs = {}
    for fn, args in calls:
        if fn == "test.AddAttribute":
            attrs[env.value(args[0])] = env.value(args[1])
    assert attrs == {
        "activations": ["sigmoid", "tanh", "tanh"],
        "direction": "forward",
        "hidden_size": 3,
        "input_forget": False,
        "clip": 9999.0,
    }, attrs
    case = run_lstm_test(env["X_data"], env["W_data"], env["R_data"], env["Y_data"], [], [], 1, 2, 3, 2)
    case["repeats"] = 2  # two sessions sharing the pre-packed weights
    return [case]


# -- rnn_op_test.cc --------------------------------------------------------------------------------
def optester_case(calls, env):
    """An inline OpTester("RNN"): its AddAttribute / AddInput / AddOutput / Run calls, in order."""
    attrs, inputs, outputs, failure = {}, {}, {}, None
    dims = {}
    for fn, args in calls:
        if fn == "test.AddAttribute":
            attrs[env.value(args[0])] = env.value(args[1])
        elif fn.startswith("test.AddInput") or fn.startswith("test.AddOutput"):
            name, shape, data = env.value(args[0]), env.value(args[1]), env.value(args[2])
            dt = "int32" if "<int>" in fn else "float32"
            (inputs if "Input" in fn else outputs)[name] = tensor(shape, data, dt)
            dims[name] = shape
        elif fn == "test.Run":
            if args and "kExpectFailure" in args[0]:
                failure = env.value(args[1])
    if "hidden_size" in attrs:
        attrs["hidden_size"] = int(attrs["hidden_size"])
    case = {"op": "RNN", "attributes": attrs, "inputs": inputs, "outputs": outputs}
    if failure is not None:
        case["expect_failure"] = failure
    return case


def rnn_lambda_cases(name, body):
    """The three rnn_op_test.cc tests that run a lambda with several OpTesters."""
    out = []
    if name in ("DISABLED_RNN_default_attributes_and_forward_direction", "DISABLED_RNN_reverse_direction"):
        lam = re.search(
            r"auto (run_test|runTest) = \[&\]\(OpTester& test, bool useDefault, "
            r"RNNOutputOption outputOption\)",
            body,
        )
        lam_body = block(body, lam.end())
        scal = interpret(body[: lam.start()])
        # the lambda adds B, sequence_lens, initial_h when ``useDefault`` (forward test) or when
        # ``!useDefault`` (reverse test); Y / Y_h by the output option
        adds_inputs_when = not name.endswith("reverse_direction")
        require(lam_body, "if (useDefault) {" if adds_inputs_when else "if (!useDefault) {")
        invocations = re.findall(
            r"OpTester (\w+)\(\"RNN\"\);((?:\s*\1\.AddAttribute\([^;]*\);)*)\s*\w+\(\1, (true|false), "
            r"(RNNOutput\w+)\);",
            body,
        )
        assert len(invocations) == 6, invocations
        for var, attr_text, use_default, option in invocations:
            env = Env(scal)
            env["sequence_lens_data"] = [int(env["seq_length"])] * int(env["batch_size"])
            calls = []
            for m in re.finditer(rf"{var}\.AddAttribute\(([^;]*)\);", attr_text):
                calls.append(("test.AddAttribute", split_args(m.group(1))))
            interpret(lam_body, env, lambda fn, args, e, calls=calls: calls.append((fn, args)))
            use = use_default == "true"
            keep = []
            for fn, args in calls:
                if fn.startswith("test.AddInput") and env.value(args[0]) in (
                    "B",
                    "sequence_lens",
                    "initial_h",
                ):
                    if use != adds_inputs_when:
                        continue
                if fn.startswith("test.AddOutput"):
                    o = env.value(args[0])
                    if (o == "Y" and option == "RNNOutputY_h") or (o == "Y_h" and option == "RNNOutputY"):
                        continue
                keep.append((fn, args))
            case = optester_case(keep, env)
            case["variant"] = f"{'default' if use else 'explicit'} inputs, {option}"
            out.append(case)
    elif name == "RNN_invalid_sequence_lens":
        lam = re.search(
            r"auto run_test = \[&\]\(const std::vector<int>& sequence_lens,\s*const std::string& error_msg\)",
            body,
        )
        lam_body = block(body, lam.end())
        rest = body[lam.end() + len(lam_body) :]
        scal = interpret(body[: lam.start()])
        require(rest, "std::vector<int> invalid_num_seq_len_entries(batch_size - 1, 5);")
        runs = [
            (
                [5] * (int(scal["batch_size"]) - 1),
                re.search(r"run_test\(invalid_num_seq_len_entries, (\"[^\"]*\")\);", rest).group(1),
            ),
            (
                literal(re.search(r"bad_seq_len_entry\{([^}]*)\}", rest).group(1)),
                re.search(r"run_test\(bad_seq_len_entry, (\"[^\"]*\")\);", rest).group(1),
            ),
        ]
        for seq, msg in runs:
            env = Env(scal)
            env["sequence_lens"] = [int(s) for s in seq]
            env["sequence_lens_dims"] = [len(seq)]
            env["error_msg"] = msg.strip('"')
            calls = []
            interpret(
                lam_body.replace("gsl::narrow_cast<int64_t>(sequence_lens.size())", str(len(seq))),
                env,
                lambda fn, args, e, calls=calls: calls.append((fn, args)),
            )
            out.append(optester_case(calls, env))
    return out


def rnn_cases_of(src: str):
    cases = []
    for suite, name, body in tests_of(src):
        if "auto run_test" in body or "auto runTest" in body:
            found = rnn_lambda_cases(name, body)
            how = "by hand (a lambda run with several OpTesters)"
        else:
            calls = []
            env = interpret(body, on_call=lambda fn, args, e, calls=calls: calls.append((fn, args)))
            found = [optester_case(calls, env)]
            how = "parsed"
        for c in found:
            c["test"] = f"{suite}.{name}"
            c["transcription"] = how
        cases += found
    return cases


# -- all of it -------------------------------------------------------------------------------------
KEYS = (
    "name",
    "test",
    "op",
    "attributes",
    "inputs",
    "outputs",
    "expect_failure",
    "tolerance",
    "disabled",
    "repeats",
    "variant",
    "transcription",
)


def collect(src_dir: Path) -> dict:
    cases = []
    for op in ("GRU", "LSTM"):
        fname, _ = FILES[op]
        src = preprocess((src_dir / fname).read_text())
        make, on_call = (gru_cases if op == "GRU" else lstm_cases)(src)
        for suite, name, body in tests_of(src):
            before = len(make)
            env = interpret(body, on_call=on_call)
            how = "parsed"
            if name == "SharedPrepackedWeights":
                make += shared_prepacked(env)
                how = "by hand (inline OpTester with shared pre-packed weights)"
            if len(make) == before:
                raise ValueError(f"{suite}.{name}: no case found")
            for c in make[before:]:
                c["test"] = f"{suite}.{name}"
                c["transcription"] = how
        cases += make
    src = preprocess((src_dir / FILES["RNN"][0]).read_text())
    cases += rnn_cases_of(src)
    # names: Suite.Test/k; drop exact repeats within a test
    out, seen = [], {}
    for c in cases:
        c.setdefault("repeats", 1)
        key = json.dumps({k: c[k] for k in ("test", "op", "attributes", "inputs", "outputs")}, sort_keys=True)
        if key in seen:
            seen[key]["repeats"] += c["repeats"]
            continue
        seen[key] = c
        c["disabled"] = ".DISABLED_" in c["test"]
        c["tolerance"] = TOLERANCE[c["op"]]
        out.append(c)
    counter = {}
    for c in out:
        counter[c["test"]] = counter.get(c["test"], 0) + 1
        c["name"] = f"{c['test']}/{counter[c['test']]}"
    for c in out:  # data as float32, like the C++ float vectors
        for t in list(c["inputs"].values()) + list(c["outputs"].values()):
            if t["dtype"] == "float32":
                t["data"] = f32(t["data"])
    return {
        "source": {
            op: {
                "repository": "microsoft/onnxruntime",
                "path": f"onnxruntime/test/providers/cpu/rnn/{f}",
                "commit": sha,
            }
            for op, (f, sha) in FILES.items()
        },
        "license": "The test vectors are from ONNX Runtime's tests, MIT License, Copyright (c) Microsoft "
        "Corporation (https://github.com/microsoft/onnxruntime/blob/main/LICENSE).",
        "written_by": "tools/ort_rnn_cases.py",
        "tolerance_note": "OpTester's float check: |actual - expected| <= atol + rtol * |expected| "
        "(onnxruntime/test/providers/checkers.cc; RunLstmTest sets atol 1e-4).",
        "cases": [{k: c[k] for k in KEYS if k in c} for c in out],
    }


def dump(obj: dict, path: Path) -> None:
    head = {k: v for k, v in obj.items() if k != "cases"}
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()] + [' "cases": [']
    lines += [
        " " + json.dumps(c, sort_keys=False) + ("," if i + 1 < len(obj["cases"]) else "")
        for i, c in enumerate(obj["cases"])
    ]
    lines += [" ]", "}"]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> None:
    src_dir = Path(argv[1])
    out = (
        Path(argv[2])
        if len(argv) > 2
        else Path(__file__).resolve().parents[1] / "tests" / "data" / "ort_rnn_cases.json"
    )
    obj = collect(src_dir)
    dump(obj, out)
    tests = {c["test"] for c in obj["cases"]}
    print(f"{len(tests)} TESTs, {len(obj['cases'])} cases -> {out}")


if __name__ == "__main__":
    main(sys.argv)
