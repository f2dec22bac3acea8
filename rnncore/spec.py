"""A plain description of an inference model: what the C core runs and the references compute.

A :class:`ModelSpec` is an optional embedding table, a stack of recurrent layers (each one
layer of one cell type, one or two directions), an optional last-step pooling and an optional
linear head. It holds float weights named and shaped as in PyTorch's ``state_dict``. It is the
one description of a model that everything else reads or writes:

* :func:`spec_from_model` builds it from ``rc.nn`` models, and the importers emit it
  (``from_torch`` / ``from_keras`` / ``from_onnx`` with ``as_spec=True``);
* :func:`rnncore.quant.quantize_model` turns it into the q8 form, the references run it;
* :func:`to_rnc_spec` is its one conversion to :func:`rnncore.io.rnc.write_rnc`'s ``dict``
  (:func:`spec_from_rnc` the way back), and :func:`build_rnc` writes a model's ``.rnc``
  bytes without the compiled engine (``rc.compile`` and ``rnncore convert`` use it).

(Formerly ``rnncore.quant.spec``, which re-exports it.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: rc.nn layers on (N, C, H, W) (rnncore.nn.conv2d), which the C engine does not run
_TWO_D = ("Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d")

#: gates per cell type (PyTorch order: GRU r,z,n; LSTM i,f,g,o)
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}
HEAD_ACTIVATIONS = ("none", "relu", "sigmoid", "tanh", "softmax", "log_softmax")


@dataclass
class CellWeights:
    """One direction of one layer: ``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``, biases ``(G*H,)``."""

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray
    bias_hh: np.ndarray


#: the cell options a layer may carry (ONNX RNN/GRU/LSTM attributes, learned initial states);
#: see :class:`LayerSpec`
OPTION_KEYS = ("reverse", "reverse_output", "input_forget", "clip", "activations", "peepholes", "initial_h",
               "initial_c", "proj", "layer_norm")


@dataclass
class LayerSpec:
    """One recurrent layer: cell type, sizes, and one :class:`CellWeights` per direction.

    ``options`` (None: the plain cell) holds the ONNX operator options and learned initial
    states, the equations of :class:`rnncore.nn.extended.ExtendedRecurrent`: ``reverse``
    (one direction reading each sequence backwards), ``reverse_output`` (with ``reverse``: the
    outputs in processing order, ``y[b, t]`` after reading ``x[b, len_b - 1 - t]``, Keras'
    ``go_backwards``: ``ReverseTime`` before a forward layer), ``input_forget`` (LSTM ``f = 1 - i``),
    ``clip`` (float or None), ``activations`` (per direction, ``(name, alpha, beta)`` per
    activation slot: RNN ``f``; GRU ``f, g``; LSTM ``f, g, h``; None: the cell's defaults),
    ``peepholes`` ``(D, 3, H)`` (rows ``p_i, p_f, p_o``), ``initial_h`` / ``initial_c``
    ``(D, H)`` (``initial_h``: ``(D, P)`` with a projection): the state every sequence starts
    from when none is given (and what ``stream.reset()`` restores), ``proj`` ``(D, P, H)``: an
    LSTM's projection ``W_hr`` (PyTorch ``proj_size = P``: ``h = (o * tanh(c)) W_hr^T``, and
    ``weight_hh`` is then ``(4H, P)``), ``layer_norm``: a layer-normalised GRU (reset_after) or
    LSTM (:mod:`rnncore.nn.lncells`), a dict ``per_gate`` (bool), ``eps`` (float), ``ih``, ``hh``
    ``(D, 2, G*H)`` and (LSTM) ``c`` ``(D, 2, H)``, per direction the LayerNorm gains then shifts
    (``ln_ih_weight``, ``ln_ih_bias``, ...); the layer's biases are then zero.
    """

    cell: str
    input_size: int
    hidden_size: int
    directions: list[CellWeights]
    reset_after: bool = True
    options: dict | None = None

    @property
    def num_directions(self) -> int:
        return len(self.directions)

    def __repr__(self) -> str:
        form = "" if self.cell != "gru" or self.reset_after else ", reset_after=False"
        return (f"LayerSpec({self.cell!r}, input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"directions={self.num_directions}{form})")

    @property
    def state_size(self) -> int:
        """The width of h (and of each direction's output): the projection's P, else H."""
        proj = None if not self.options else self.options.get("proj")
        return self.hidden_size if proj is None else int(np.shape(proj)[1])

    @property
    def output_size(self) -> int:
        return self.state_size * self.num_directions

    def validate(self) -> None:
        if self.cell not in GATES:
            raise ValueError(f"cell: expected one of {sorted(GATES)}, got {self.cell!r}")
        if self.num_directions not in (1, 2):
            raise ValueError(f"directions: expected 1 or 2, got {self.num_directions}")
        g, h, i = GATES[self.cell], self.hidden_size, self.input_size
        for w in self.directions:
            for name, shape in (("weight_ih", (g * h, i)), ("weight_hh", (g * h, self.state_size)),
                                ("bias_ih", (g * h,)), ("bias_hh", (g * h,))):
                got = np.shape(getattr(w, name))
                if got != shape:
                    raise ValueError(f"{self.cell} layer {name}: expected shape {shape}, got {got}")
        if self.options:
            unknown = set(self.options) - set(OPTION_KEYS)
            if unknown:
                raise ValueError(f"options: unknown keys {sorted(unknown)}; known: {OPTION_KEYS}")
            D = self.num_directions
            p = self.state_size
            if self.options.get("proj") is not None and (self.cell != "lstm" or not 0 < p < h):
                raise ValueError(f"options['proj']: an LSTM projection (D, P, {h}) with 0 < P < {h}, "
                                 f"got {np.shape(self.options['proj'])} on a {self.cell}")
            for key, shape in (("peepholes", (D, 3, h)), ("initial_h", (D, p)), ("initial_c", (D, h)),
                               ("proj", (D, p, h))):
                v = self.options.get(key)
                if v is not None and np.shape(v) != shape:
                    raise ValueError(f"options[{key!r}]: expected shape {shape}, got {np.shape(v)}")
            if self.options.get("reverse") and D == 2:
                raise ValueError("options['reverse']: a bidirectional layer already reads backwards")
            ln = self.options.get("layer_norm")
            if ln is not None:
                if self.cell not in ("gru", "lstm") or (self.cell == "gru" and not self.reset_after):
                    raise ValueError("options['layer_norm']: a layer-normalised GRU (reset_after) or LSTM, "
                                     f"got a {self.cell}{'' if self.reset_after else ' (reset_after=False)'}")
                n = g * h
                for key, shape in (("ih", (D, 2, n)), ("hh", (D, 2, n)),
                                   ("c", (D, 2, h) if self.cell == "lstm" else None)):
                    got = None if ln.get(key) is None else np.shape(ln[key])
                    if got != shape:
                        raise ValueError(f"options['layer_norm'][{key!r}]: expected shape {shape}, got {got}")


@dataclass
class LinearSpec:
    """``y = act(x @ weight.T + bias)`` with ``weight (O, F)``, ``bias (O,)``."""

    weight: np.ndarray
    bias: np.ndarray | None = None
    activation: str = "none"

    def __repr__(self) -> str:
        o, f = np.shape(self.weight)
        return (f"LinearSpec(in_features={f}, out_features={o}, bias={self.bias is not None}, "
                f"activation={self.activation!r})")



def stack_text(embedding, layers, last_step: bool, head, mean: bool = False, attention=None,
               maximum: bool = False, last: bool = False) -> str:
    """``embedding(VxD) > gru(64) > last_step > linear(64->9) > softmax``: a stack in one line
    (``ModelSpec`` and the quantised reference's ``QModel`` print it); ``head`` is None or
    ``((out, in), activation)``."""
    parts = [] if embedding is None else [f"embedding({np.shape(embedding)[0]}x{np.shape(embedding)[1]})"]
    parts += [f"{layer.cell}{'x2' if layer.num_directions == 2 else ''}({layer.hidden_size})"
              f"{'+options' if getattr(layer, 'options', None) else ''}" for layer in layers]
    if last_step and (last or (mean and maximum)):
        parts.append("concat_pool(" + "|".join(p for p, on in (("last", last), ("mean", mean),
                                                                ("max", maximum)) if on) + ")")
    elif last_step:
        parts.append(f"attention({np.shape(attention['weight'])[0]})" if attention is not None
                     else "masked_mean" if mean else "masked_max" if maximum else "last_step")
    if head is not None:
        (o, f), activation = head
        parts.append(f"linear({f}->{o})" + ("" if activation == "none" else f" > {activation}"))
    return " > ".join(parts)


@dataclass
class ModelSpec:
    """Embedding? -> recurrent layers -> last step? -> linear head?

    ``last_step`` pools ``y[b, lengths[b] - 1]`` (with ``last_step_bidirectional`` the backward
    half at ``t = 0``, like ``rc.nn.LastStep(bidirectional=True)``); with ``last_step_mean`` the
    pooling is instead the mean over each sequence's valid steps, ``rc.nn.MaskedMean``; with
    ``last_step_max`` their maximum, ``rc.nn.MaskedMax``; with ``last_step_attention`` additive
    attention over them, ``rc.nn.AttentionPool``. Without
    ``last_step`` the head, if any, applies at every step.
    """

    layers: list[LayerSpec]
    embedding: np.ndarray | None = None
    last_step: bool = False
    #: like ``rc.nn.LastStep(bidirectional=True)``: the backward half is taken at t = 0
    last_step_bidirectional: bool = False
    #: with ``last_step``: pool the mean over the valid steps (``rc.nn.MaskedMean``) instead
    last_step_mean: bool = False
    #: with ``last_step``: pool the maximum over the valid steps (``rc.nn.MaskedMax``) instead
    last_step_max: bool = False
    #: with ``last_step_mean`` and/or ``last_step_max``: the last valid step is a part too (with
    #: ``last_step_bidirectional`` its backward half at t = 0); the pooled row is the parts present in
    #: the fixed order ``[last | mean | max]`` (``rc.nn.ConcatPool``), each the pooled width
    last_step_last: bool = False
    #: with ``last_step``: pool attention over the valid steps (``rc.nn.AttentionPool``) instead:
    #: ``{"weight": (A, F), "bias": (A,), "score": (A,)}`` (``proj.weight``, ``proj.bias``,
    #: ``score.weight[0]``)
    last_step_attention: dict | None = None
    head: LinearSpec | None = None
    meta: dict = field(default_factory=dict)
    #: per-step records (the ``rc.nn`` layers' ``record()`` dicts, docs/rnc-format.md "Per-step
    #: records"): ``front`` before the recurrent layers (FrameConv1d, Magnitude, activations, a
    #: per-step Linear as a ``frame_conv1d`` of frame_length 1), ``post`` after them and
    #: ``post_pooled`` after ``last_step`` (per-step Linears, activations, norms); in each,
    #: ``{"kind": "residual", "span": n}`` adds the input of the record ``n`` before it (``Residual``)
    front: list = field(default_factory=list)
    post: list = field(default_factory=list)
    post_pooled: list = field(default_factory=list)
    #: the features per step the front-end takes (None: no front-end)
    front_input: int | None = None
    #: per-step records between recurrent layers: ``mid[l]`` runs on layer ``l``'s output (both
    #: directions concatenated) before layer ``l + 1`` (records that map a step alone, as ``post``);
    #: at most ``len(layers) - 1`` lists, a missing one empty
    mid: list = field(default_factory=list)
    #: positions per step (``rc.nn.ChunkPositions(C, P)`` after the front-end ... ``ChunkMean(P)``
    #: last): the front-end's ``C*P`` features are ``P`` steps of ``C`` for the recurrent layers
    #: (value ``c*P + p``: channel ``c`` at position ``p``), and the output at each step is the mean
    #: of its ``P`` positions' outputs (the ``positions`` record, docs/rnc-format.md)
    positions: int = 1

    @property
    def input_size(self) -> int:
        return self.front_input if self.front else self.layers[0].input_size

    def __repr__(self) -> str:
        """``ModelSpec(embedding(VxD) > gru(64) > last_step > linear(64->9))``: the stack, no arrays."""
        head = None if self.head is None else (np.shape(self.head.weight), self.head.activation)
        stack = stack_text(self.embedding, self.layers, self.last_step, head, self.last_step_mean,
                           self.last_step_attention, self.last_step_max, self.last_step_last)
        return f"ModelSpec({stack})"

    @property
    def bidirectional(self) -> bool:
        return any(layer.num_directions == 2 for layer in self.layers)

    @property
    def output_size(self) -> int:
        if self.head is not None:
            return int(np.shape(self.head.weight)[0])
        return _front_width(self.post_pooled, _front_width(self.post, self.layers[-1].output_size)
                            * self.pooled_parts)

    @property
    def pooled_parts(self) -> int:
        """How many pooled rows side by side the pooling gives: ``[last | mean | max]`` of those
        present with mean and/or max pooling, else 1."""
        if not self.last_step or not (self.last_step_mean or self.last_step_max):
            return 1
        return int(self.last_step_last) + int(self.last_step_mean) + int(self.last_step_max)

    def validate(self) -> None:
        if not self.layers:
            raise ValueError("model: at least one recurrent layer is required")
        bidir_alone = self.last_step_bidirectional and not self.last_step_last
        if self.last_step_mean and (not self.last_step or bidir_alone):
            raise ValueError("last_step_mean: the mean pooling needs last_step and no "
                             "last_step_bidirectional (unless last_step_last)")
        if self.last_step_max and (not self.last_step or bidir_alone):
            raise ValueError("last_step_max: the max pooling needs last_step and no "
                             "last_step_bidirectional (unless last_step_last)")
        if self.last_step_last and not (self.last_step_mean or self.last_step_max):
            raise ValueError("last_step_last: the last step as a part of [last | mean | max] needs "
                             "last_step_mean and/or last_step_max")
        if self.last_step_attention is not None and (not self.last_step or self.last_step_bidirectional
                                                     or self.last_step_mean or self.last_step_max
                                                     or self.last_step_last):
            raise ValueError("last_step_attention: the attention pooling needs last_step and none of "
                             "last_step_bidirectional, last_step_mean, last_step_max, last_step_last")
        if (self.embedding is not None and not self.front
                and np.shape(self.embedding)[1] != self.layers[0].input_size):
            raise ValueError(
                f"embedding dim {np.shape(self.embedding)[1]} != first layer input_size "
                f"{self.layers[0].input_size}")
        prev = None
        if self.front:
            if self.embedding is not None and self.front_input != np.shape(self.embedding)[1]:
                raise ValueError(f"front: front_input {self.front_input} after an embedding of dim "
                                 f"{np.shape(self.embedding)[1]} (the front-end runs on its rows)")
            if self.embedding is not None and any(r["kind"] in ("log_mel", "instance_norm")
                                                  for r in self.front):
                raise ValueError("front: log_mel and instance_norm cannot follow an embedding (the C core "
                                 "runs them on input features only)")
            prev = _front_width(self.front, self.front_input)
        if self.positions != 1:
            if (not self.front or isinstance(self.positions, bool) or not isinstance(self.positions, int)
                    or self.positions < 2 or prev % self.positions):
                raise ValueError(f"positions: expected 2 or more dividing the features a front-end leaves "
                                 f"({prev}), got {self.positions!r}")
            if self.last_step:
                raise ValueError("positions: the output is the mean of each step's positions; last_step "
                                 "pools no such output")
            prev //= self.positions
        if len(self.mid) > len(self.layers) - 1:
            raise ValueError(f"mid: {len(self.mid)} lists of per-step records, expected at most "
                             f"{len(self.layers) - 1} (one between each two recurrent layers)")
        for k, layer in enumerate(self.layers):
            layer.validate()
            if prev is not None and layer.input_size != prev:
                raise ValueError(f"layer {k}: input_size {layer.input_size}, previous layer gives {prev}")
            prev = layer.output_size
            if k < len(self.mid) and self.mid[k]:
                prev = _front_width(self.mid[k], prev)
        prev = _front_width(self.post_pooled, _front_width(self.post, prev) * self.pooled_parts)
        if self.head is not None:
            o_f = np.shape(self.head.weight)
            if len(o_f) != 2 or o_f[1] != prev:
                raise ValueError(f"head weight: expected shape (O, {prev}), got {o_f}")
            if self.head.activation not in HEAD_ACTIVATIONS:
                raise ValueError(f"head activation: expected one of {HEAD_ACTIVATIONS}, "
                                 f"got {self.head.activation!r}")


def _front_width(records: list, width: int) -> int:
    """The features per step left by the front-end records, from ``width`` features."""
    widths: list = []   # each record's input width (a concat's span reaches back to one)
    for n, r in enumerate(records):
        kind = r["kind"]
        widths.append(width)
        if kind == "concat":   # [the input of the record `span` before ; x]
            span = r.get("span")
            if not isinstance(span, (int, np.integer)) or not 1 <= span <= n:
                raise ValueError(f"front[{n}] (concat): span must be 1..{n}, got {span!r}")
            width += widths[n - span]
        if kind in ("frame_conv1d", "frame_conv"):
            if r["in_channels"] * r["frame_length"] != width:
                raise ValueError(f"front[{n}] (frame_conv1d): in_channels*frame_length = "
                                 f"{r['in_channels'] * r['frame_length']}, the previous layer gives {width}")
            span = r.get("dilation", 1) * (r["kernel_size"] - 1) + 1
            padded = r["frame_length"] + r.get("pad_left", 0) + r.get("pad_right", 0)
            width = r["out_channels"] * ((padded - span) // r.get("stride", 1) + 1)
        elif kind in ("conv1d", "conv_time"):
            if r["in_channels"] != width:
                raise ValueError(f"front[{n}] (conv1d): in_channels {r['in_channels']}, the previous layer "
                                 f"gives {width}")
            width = r["out_channels"]
        elif kind in ("max_pool1d", "avg_pool1d", "pool_time"):
            if r["channels"] != width:
                raise ValueError(f"front[{n}] ({kind}): channels {r['channels']}, the previous layer "
                                 f"gives {width}")
        elif kind in ("magnitude", "mul_halves"):
            width //= 2
        elif kind == "log_mel":
            width = r["n_mels"]
    return width


#: the rc.nn activations a per-step record runs (their ``record()`` kinds)
STEP_ACTIVATIONS = ("relu", "sigmoid", "tanh", "hard_sigmoid", "hardsigmoid", "gelu", "layer_norm",
                    "scale_shift", "leaky_relu", "elu",
                    "hardtanh", "silu", "hardswish", "softplus", "softsign", "log_affine", "abs")
#: the per-step records that map a row alone and may stand anywhere a per-step record does (before,
#: between and after the recurrent layers): the activations and ``mul_halves`` (``rc.nn.MulHalves``,
#: 2H -> H features)
STEP_ROWWISE = (*STEP_ACTIVATIONS, "mul_halves")


def linear_step_record(m: object) -> dict:
    """An ``rc.nn.Linear`` (or a :class:`LinearSpec`: ``y = x W^T + b`` on each step) as the
    per-step record that runs it: a ``frame_conv1d`` of ``frame_length = kernel_size = 1``
    (``weight (O, F, 1)``), which has no window over time and runs in f32 and q8 as every
    frame_conv, before the recurrent layers and after them (docs/layers.md)."""
    if isinstance(m, LinearSpec):
        w, b = _np(m.weight), None if m.bias is None else _np(m.bias)
    else:
        sd = m.state_dict()
        w, b = _np(sd["weight"]), _np(sd["bias"]) if "bias" in sd else None
    o, f = w.shape
    t = {"weight": w.reshape(o, f, 1)}
    if b is not None:
        t["bias"] = b
    return {"kind": "frame_conv1d", "in_channels": int(f), "out_channels": int(o), "kernel_size": 1,
            "frame_length": 1, "tensors": t}


def _half_record(width: int, direction: str, name: str) -> dict:
    """``LastStep(bidirectional=True, direction=...)`` in the engine: the bidirectional pooling's
    ``[forward | backward]`` row (``width = 2H``) then a per-step Linear that keeps one half,
    ``y = S x`` with ``S = [I | 0]`` (forward) or ``[0 | I]`` (backward), ``(H, 2H)``, kept in float32
    in a q8 file too: each output is one input times 1 plus zeros, so the half exactly (in q8 no
    rounding of the pooled row to 8 bits; the NumPy q8 spec takes the columns,
    rnncore.quant.front.step_record). Every engine path (run, q8, export-c, to_onnx) runs it as any
    per-step Linear after the pooling, with no format flag of its own."""
    if width % 2:
        raise ValueError(f"compile: module {name!r} (LastStep, direction={direction!r}) pools one half of "
                         f"a bidirectional output; the features before it are {width}, not even")
    H = width // 2
    select = np.zeros((H, width), np.float32)
    select[:, (0 if direction == "forward" else H) + np.arange(H)] = np.eye(H, dtype=np.float32)
    return {"kind": "frame_conv1d", "in_channels": width, "out_channels": H, "kernel_size": 1,
            "frame_length": 1, "tensors": {"weight": select.reshape(H, width, 1)}, "precision": "f32"}


def _record_input(m: object, rec: dict) -> int | None:
    """The features per step a front-end layer takes (None: an activation, any width)."""
    rkind = rec.get("kind")
    if type(m).__name__ == "Linear":
        return int(m.in_features)
    return (int(m.in_features) if rkind == "frame_conv1d" else int(m.in_channels) if rkind == "conv1d"
            else rec.get("n_fft" if rkind == "log_mel" else "features"))


def _residual_records(m: object, name: str, front: bool) -> tuple[list, tuple]:
    """``Residual(f)`` as per-step records: f's records (a layer, or a Sequential of layers,
    Residuals included) then ``{"kind": "residual", "span": len(f's records)}`` (the record adding
    the input of the record ``span`` before it); also the first layer and its record. Raises
    ``ValueError`` naming the layer the C core cannot run per step."""
    allowed = ("frame_conv1d", "conv1d", "magnitude", *STEP_ROWWISE) if front else (
        "frame_conv1d", *STEP_ROWWISE)
    out: list = []
    first: list = []

    def walk(mod: object, path: str) -> None:
        kind = type(mod).__name__
        if kind == "Dropout":
            return
        if kind == "Residual":
            n0 = len(out)
            walk(mod.fn, path + ".fn")
            if len(out) == n0:
                raise ValueError(f"compile: module {path!r} (Residual) wraps no per-step layer")
            out.append({"kind": "residual", "span": len(out) - n0})
            return
        rec = mod.record() if hasattr(mod, "record") else None
        if kind == "Linear":
            rec = linear_step_record(mod)
        rkind = rec.get("kind") if isinstance(rec, dict) else None
        if rkind in allowed and (front or kind == "Linear" or rkind != "frame_conv1d"):
            rec = dict(rec)
            if "tensors" in rec:
                rec["tensors"] = {k: _np(v) for k, v in rec["tensors"].items()}
            if not first:
                first.extend((mod, rec))
            out.append(rec)
            return
        children = list(mod.children()) if hasattr(mod, "children") and kind == "Sequential" else []
        if not children:
            where = "before" if front else "after"
            runs = "Linear, " + ", ".join(allowed if front else STEP_ROWWISE)
            raise ValueError(f"compile: module {path!r} ({kind}) inside a Residual is not a per-step layer "
                             f"the C core runs {where} the recurrent layers ({runs})")
        for cname, c in children:
            walk(c, f"{path}.{cname}")

    walk(m, name)
    return out, tuple(first)


#: the layers of a chunk front-end (rnncore/nn/chunk.py) that lower to front-end records
_CHUNK_FRONT = ("FrameConcat", "FrameResidual", "SmoothedMeanSubtract")


def _chunk_records(m: object, name: str) -> list:
    """A chunk front-end layer (:mod:`rnncore.nn.chunk`) as front-end records, its equation kept:

    * ``FrameConcat(body)``: body's records then ``{"kind": "concat", "span": len(body's)}``
      (``y = [x ; body(x)]``);
    * ``FrameResidual(body)``: body's records then a ``residual`` of that span;
      ``FrameResidual(body, proj)`` with ``proj`` one FrameConv1d of ``kernel_size`` 1 (stride 1,
      unpadded, one group, ``W_p (O, C, 1)``, ``b_p``): body's records, a ``concat`` of that span
      (``[x ; body(x)]``), then a frame_conv1d of ``kernel_size`` 1 with weight ``[W_p | I_O]``
      and bias ``b_p`` (``W_p x + b_p + body(x)``);
    * ``SmoothedMeanSubtract(C, L, smoother)``: frame_conv1d ``C -> 1`` of weight ``1/C`` over the
      ``L`` positions (``m``), the smoother's record (``s``), frame_conv1d ``1 -> 1`` of
      ``kernel_size = L_s`` and weight ``1/L_s`` (``mu``), frame_conv1d ``1 -> C*L`` of weight
      ``-1`` over one position (``-mu`` at every value), then a ``residual`` of span 4 (``x - mu``).

    Raises ``ValueError`` naming the module the C core cannot run."""
    out: list = []

    def conv(ci: int, co: int, k: int, L: int, w: np.ndarray, b: np.ndarray | None = None) -> dict:
        t = {"weight": np.asarray(w, np.float64).reshape(co, ci, k)}
        if b is not None:
            t["bias"] = np.asarray(b, np.float64)
        return {"kind": "frame_conv1d", "in_channels": ci, "out_channels": co, "kernel_size": k,
                "frame_length": L, "stride": 1, "dilation": 1, "groups": 1, "pad_left": 0, "pad_right": 0,
                "padding_mode": "zeros", "tensors": t}

    def walk(mod: object, path: str) -> None:
        kind = type(mod).__name__
        sub = dict(mod.children()) if hasattr(mod, "children") else {}
        if kind == "Sequential":
            for cname, c in sub.items():
                walk(c, f"{path}.{cname}")
            return
        if kind in ("FrameConcat", "FrameResidual"):
            n0 = len(out)
            walk(sub["body"], f"{path}.body")
            span = len(out) - n0
            if not span:
                raise ValueError(f"compile: module {path!r} ({kind}) has an empty body")
            proj = sub.get("proj")
            if kind == "FrameConcat" or proj is not None:
                out.append({"kind": "concat", "span": span})
            if kind == "FrameResidual" and proj is None:
                out.append({"kind": "residual", "span": span})
            elif proj is not None:
                p = list(dict(proj.children()).values()) if type(proj).__name__ == "Sequential" else [proj]
                c = p[0] if len(p) == 1 else None
                if (type(c).__name__ != "FrameConv1d" or c.kernel_size != 1 or c.stride != 1
                        or c.groups != 1 or c.pad_left or c.pad_right):
                    where = f"{path}.proj"
                    raise ValueError(f"compile: module {where!r} ({type(proj).__name__}): the C core runs "
                                     "a FrameResidual projection that is one FrameConv1d of kernel_size 1 "
                                     f"(stride 1, unpadded, groups 1), got {proj!r}")
                ci, co, L = c.in_channels, c.out_channels, c.frame_length
                w = np.concatenate([_np(c.params["weight"])[:, :, 0], np.eye(co)], axis=1)
                b = _np(c.params["bias"]) if "bias" in c.params else None
                out.append(conv(ci + co, co, 1, L, w, b))
            return
        if kind == "SmoothedMeanSubtract":
            C, L, sm = mod.channels, mod.length, sub["smoother"]
            Ls = sm.out_length
            rec = sm.record()
            rec["tensors"] = {k: _np(v) for k, v in rec["tensors"].items()}
            out.extend([conv(C, 1, 1, L, np.full(C, 1.0 / C)), rec, conv(1, 1, Ls, Ls, np.full(Ls, 1.0 / Ls)),
                        conv(1, C * L, 1, 1, np.full(C * L, -1.0)), {"kind": "residual", "span": 4}])
            return
        rec = mod.record() if hasattr(mod, "record") else None
        rkind = rec.get("kind") if isinstance(rec, dict) else None
        if rkind not in ("frame_conv1d", "magnitude", *STEP_ROWWISE):
            raise ValueError(f"compile: module {path!r} ({kind}) inside a chunk front-end layer is not a "
                             "per-step layer the C core runs (FrameConv1d, Magnitude, activations, "
                             "LogAffine)")
        rec = dict(rec)
        if "tensors" in rec:
            rec["tensors"] = {k: _np(v) for k, v in rec["tensors"].items()}
        out.append(rec)

    walk(m, name)
    return out


def _np(v: object) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def layers_from_state_dict(cell: str, sd: dict, num_layers: int, bidirectional: bool,
                           reset_after: bool = True, prefix: str = "") -> list[LayerSpec]:
    """Build :class:`LayerSpec` s from PyTorch-named weights (``weight_ih_l0``, ``..._reverse``).

    Missing biases are zeros (PyTorch ``bias=False``).
    """
    layers = []
    for k in range(num_layers):
        dirs = []
        for suffix in ("", "_reverse")[: 2 if bidirectional else 1]:
            key = f"{prefix}%s_l{k}{suffix}"
            if key % "weight_ih" not in sd:
                raise KeyError(f"state_dict: missing {key % 'weight_ih'!r}")
            w_ih, w_hh = _np(sd[key % "weight_ih"]), _np(sd[key % "weight_hh"])
            zeros = np.zeros(w_ih.shape[0])
            b_ih = _np(sd[key % "bias_ih"]) if key % "bias_ih" in sd else zeros
            b_hh = _np(sd[key % "bias_hh"]) if key % "bias_hh" in sd else zeros
            dirs.append(CellWeights(w_ih, w_hh, b_ih, b_hh))
        hr = [f"{prefix}weight_hr_l{k}{s}" for s in ("", "_reverse")[: 2 if bidirectional else 1]]
        if hr[0] in sd:   # LSTM proj_size: hidden_size from W_hr (P, H), W_hh is (4H, P)
            proj = np.stack([_np(sd[n]) for n in hr])
            layers.append(LayerSpec(cell, dirs[0].weight_ih.shape[1], proj.shape[2], dirs, reset_after,
                                    {"proj": proj}))
            continue
        layers.append(LayerSpec(cell, dirs[0].weight_ih.shape[1], dirs[0].weight_hh.shape[1], dirs,
                                reset_after))
    return layers


def _cell_of(module: object) -> str | None:
    name = type(module).__name__.lower()
    if name in ("gru", "grucell"):
        return "gru"
    if name in ("lstm", "lstmcell"):
        return "lstm"
    if name in ("rnn", "rnncell"):
        nl = getattr(module, "nonlinearity", "tanh")
        return f"rnn_{nl}"
    return None


def _recurrent_layers(module: object) -> list[LayerSpec]:
    cell = _cell_of(module)
    sd = module.state_dict()
    num_layers = int(getattr(module, "num_layers", 1))
    bidirectional = bool(getattr(module, "bidirectional", False))
    reset_after = bool(getattr(module, "reset_after", True))
    return layers_from_state_dict(cell, sd, num_layers, bidirectional, reset_after)


_LN_KINDS = ("LayerNormLSTM", "LayerNormGRU")


def layer_norm_layer(mod) -> LayerSpec:
    """The :class:`LayerSpec` of an :class:`rnncore.nn.lncells.LayerNormLSTM` / ``LayerNormGRU``:
    zero biases, ``options['layer_norm']`` (and ``options['proj']`` for ``proj_size``)."""
    sd = {k: _np(v) for k, v in mod.state_dict().items()}
    cell = "lstm" if type(mod).__name__ == "LayerNormLSTM" else "gru"
    zeros = np.zeros(sd["weight_ih"].shape[0], sd["weight_ih"].dtype)
    w = CellWeights(sd["weight_ih"], sd["weight_hh"], zeros, zeros.copy())
    ln = {"per_gate": bool(mod.per_gate), "eps": float(mod.eps),
          "ih": np.stack([sd["ln_ih_weight"], sd["ln_ih_bias"]])[None],
          "hh": np.stack([sd["ln_hh_weight"], sd["ln_hh_bias"]])[None],
          "c": np.stack([sd["ln_c_weight"], sd["ln_c_bias"]])[None] if cell == "lstm" else None}
    opts: dict = {"layer_norm": ln}
    if "weight_hr" in sd:
        opts["proj"] = sd["weight_hr"][None]
    return LayerSpec(cell, mod.input_size, mod.hidden_size, [w], True, opts)


def _head_act(kind: str) -> str:
    """The head activation a module class gives (``Sigmoid`` -> ``"sigmoid"``)."""
    return "log_softmax" if kind == "LogSoftmax" else kind.lower()


#: the records that start a front-end after an Embedding (over time: a per-step layer right after the
#: Embedding folds into its table instead, :func:`_fold_into_table`)
_EMB_FRONT_FIRST = ("conv1d", "max_pool1d", "avg_pool1d")

# the poolings over time the C core runs (a last_step record)
_POOLS = ("LastStep", "MaskedMean", "MaskedMax", "AttentionPool")


# ConcatPool: the engine's fixed order of the parts (docs/rnc-format.md, RNC_LAST_STEP_FLAG_LAST)
_CONCAT_ORDER = ("last", "mean", "max")
_CONCAT_KINDS = {"LastStep": "last", "MaskedMean": "mean", "MaskedMax": "max"}
# the per-step records that act on each feature alone: they commute with a permutation of the
# features (a ConcatPool's parts reordered into the engine's order before the next Linear)
_ELEMENTWISE = ("relu", "sigmoid", "tanh", "hard_sigmoid", "hardsigmoid", "gelu", "leaky_relu", "elu",
                "hardtanh", "silu", "hardswish", "softplus", "softsign", "abs")


def _concat_parts(m: object, name: str) -> list[str]:
    """A ``ConcatPool``'s parts as ``["max", "mean", ...]`` in its order; refuses what the engine's
    last_step record cannot compute (attention, a part twice) naming the module."""
    order = []
    for i, p in enumerate(m.pools):
        kind = type(p).__name__
        if kind not in _CONCAT_KINDS:
            raise ValueError(f"compile: module {name!r} (ConcatPool) pools[{i}] is {kind}; the engine "
                             "concatenates LastStep, MaskedMean and MaskedMax only")
        part = _CONCAT_KINDS[kind]
        if part in order:
            raise ValueError(f"compile: module {name!r} (ConcatPool) has {kind} twice "
                             f"(pools[{order.index(part)}] and pools[{i}]); the engine computes each of "
                             "[last | mean | max] at most once")
        order.append(part)
    return order


def _canonical(order: list[str]) -> list[str]:
    """``order``'s parts in the engine's ``[last | mean | max]`` order."""
    return [p for p in _CONCAT_ORDER if p in order]


def _attention_tensors(m: object) -> dict:
    """An ``rc.nn.AttentionPool``'s ``{"weight": (A, F), "bias": (A,), "score": (A,)}``."""
    w = _np(m.proj.state_dict()["weight"])
    b = m.proj.state_dict().get("bias")
    return {"weight": w, "bias": np.zeros(w.shape[0], w.dtype) if b is None else _np(b),
            "score": _np(m.score.state_dict()["weight"]).reshape(-1)}


def _fold_into_table(m: object, table: np.ndarray) -> np.ndarray:
    """The embedding table ``(vocab, D)`` through the per-step module ``m``, row by row:
    ``(vocab, D')``. ``m``'s own forward over the rows as one sequence of ``vocab`` steps, in the
    table's dtype (the model's): what the model computes for each token."""
    table = np.asarray(table)
    return np.asarray(m.forward(table[None]))[0]


class _ResidualMark:
    """Where a ``Residual`` around a recurrent layer starts / ends in :func:`spec_from_model`'s
    flattened module list (its ``f``'s modules stand between the two marks)."""

    def __init__(self, name: str, start: _ResidualMark | None = None) -> None:
        self.name, self.start, self.records, self.folded = name, start, 0, 0


def _flatten_recurrent_residuals(children: list) -> list:
    """``Residual(f)`` with a recurrent ``f`` (``rc.nn.Residual``'s ``recurrent``) as ``f``'s
    modules between two marks; the end mark becomes the residual record that adds the input of
    the first record of ``f`` (its span crosses the recurrent layer: docs/rnc-format.md)."""
    out: list = []
    for name, m in children:
        if type(m).__name__ == "Residual" and getattr(m, "recurrent", None) is not None:
            start = _ResidualMark(name)
            out.append((name, start))
            inner = [("fn", m.fn)] if getattr(m.fn, "is_recurrent", False) else [
                (f"fn.{n}", c) for n, c in m.fn.children()]
            out += _flatten_recurrent_residuals([(f"{name}.{n}", c) for n, c in inner])
            out.append((name, _ResidualMark(name, start)))
        else:
            out.append((name, m))
    return out


def _spec_records(spec: ModelSpec) -> int:
    """The records a spec has so far that a residual may span (per-step and recurrent)."""
    return len(spec.front) + len(spec.layers) + sum(map(len, spec.mid)) + len(spec.post)


def spec_from_model(model: object) -> ModelSpec:
    """Describe an ``rc.nn`` model (a recurrent layer, or a Sequential of
    ``[Embedding [per-step layers] | front-end] + recurrent layer(s) + [per-step layers] +
    [LastStep [per-step layers]] + [Linear [+ activation]]``; a ``Linear`` followed by more layers
    is a per-step record, :func:`linear_step_record`, the last one the head; per-step layers right
    after the Embedding, a per-step ``Residual`` included, are folded into its table,
    :func:`_fold_into_table`).

    Raises ``ValueError`` naming the first module that the C core cannot run.
    """
    if isinstance(model, ModelSpec):
        model.validate()
        return model
    model = _fold_extended(model)
    if isinstance(model, ModelSpec):
        return model
    if type(model).__name__ == "OnnxGraph":   # an imported whole graph: its chain of layers
        from rnncore.io.onnx_import._lower import lower_graph

        model, info = lower_graph(model)
    if _cell_of(model) is not None:
        spec = ModelSpec(_recurrent_layers(model))
        spec.validate()
        return spec
    if type(model).__name__ in _LN_KINDS:
        spec = ModelSpec([layer_norm_layer(model)])
        spec.validate()
        return spec
    children = list(model.children()) if hasattr(model, "children") else None
    if type(model).__name__ == "Residual":   # a residual alone (around a recurrent layer: y = x + GRU(x))
        children = [("0", model)]
    if not children:
        raise ValueError("compile: expected an rc.nn recurrent layer or Sequential, "
                         f"got {type(model).__name__}")
    spec = ModelSpec(layers=[])
    stage = 0  # 0: before recurrent, 1: recurrent, 2: after last-step, 3: after head
    reverse_next = None  # a ReverseTime waiting for its recurrent layer
    head_stage = 0  # the stage (1: per step, 2: after last-step) the head's Linear came at
    folded = 0  # per-step layers folded into the embedding table so far
    mean_seen = None  # a ChunkMean over P > 1 positions: the last module
    concat_perm = None  # a ConcatPool in a non-canonical order: (name, order, column permutation)
    for name, m in _flatten_recurrent_residuals(children):
        if reverse_next is not None and not (type(m).__name__ in ("ExtendedRecurrent",) + _LN_KINDS
                                             or _cell_of(m)):
            raise ValueError(f"compile: module {reverse_next!r} (ReverseTime) must come right before a "
                             "recurrent layer (Keras go_backwards) to compile")
        n_before = len(spec.layers)
        kind = type(m).__name__
        if kind in _TWO_D:
            raise ValueError(f"compile: module {name!r} ({kind}) is a 2-D layer on (N, C, H, W); the C "
                             "engine has no 2-D front-end: run the model with its NumPy forward")
        mark = m if kind == "_ResidualMark" else None
        if mark is not None:
            kind = "Residual"   # a head Linear before either mark is a per-step record (below)
        cell = _cell_of(m) if mark is None else None
        rec = m.record() if hasattr(m, "record") else None
        if kind == "Linear" and stage == 0:   # a per-step Linear in the front-end
            rec = linear_step_record(m)
        rkind = rec.get("kind") if isinstance(rec, dict) else None
        recurrent = cell is not None or kind in ("ExtendedRecurrent",) + _LN_KINDS
        if concat_perm is not None and kind not in ("Linear", "Dropout") and rkind not in _ELEMENTWISE:
            raise ValueError(f"compile: module {concat_perm[0]!r} (ConcatPool) pools in the order "
                             f"{concat_perm[1]}; the engine computes [{' | '.join(_CONCAT_ORDER)}] and "
                             f"permutes the next Linear's input columns, but module {name!r} ({kind}) "
                             "comes before any Linear (only element-wise activations and Dropout may): "
                             f"use the order {_canonical(concat_perm[1])}")
        if stage == 3 and (kind in ("Linear", "Residual") or (
                kind in (*_POOLS, "ConcatPool") and head_stage == 1) or (
                recurrent and head_stage == 1) or (
                rkind in STEP_ROWWISE and not (_head_act(kind) in HEAD_ACTIVATIONS
                                                   and spec.head.activation == "none"))):
            # more layers after a Linear: it (and its activation) was a per-step record, not the head
            act = spec.head.activation
            if act in ("softmax", "log_softmax"):
                raise ValueError(f"compile: module {name!r} ({kind}) follows a {act}; the C core runs "
                                 f"{act} only as the last Linear's activation")
            recs = spec.post if head_stage == 1 else spec.post_pooled
            recs.append(linear_step_record(spec.head))
            if act != "none":
                recs.append({"kind": act})
            spec.head = None
            stage = head_stage
        if recurrent and stage == 1 and spec.post:
            # per-step records after a recurrent layer and before this one: between the two
            spec.mid += [[] for _ in range(len(spec.layers) - 1 - len(spec.mid))]
            spec.mid.append(spec.post)
            spec.post = []
        if mark is not None:   # a Residual around a recurrent layer: its start, or its record
            if stage not in (0, 1) or (stage == 1 and spec.head is not None):
                raise ValueError(f"compile: module {mark.name!r} (Residual around a recurrent layer) must "
                                 "stand before or between the recurrent layers (not after LastStep or "
                                 "the head)")
            if mark.start is None:
                mark.records, mark.folded = _spec_records(spec), folded
                continue
            if folded != mark.start.folded:
                raise ValueError(f"compile: module {mark.name!r} (Residual around a recurrent layer) "
                                 "starts with per-step layers right after the Embedding, which fold into "
                                 "its table; put the Residual's per-step layers after the recurrent layer")
            span = _spec_records(spec) - mark.start.records
            (spec.front if stage == 0 else spec.post).append({"kind": "residual", "span": span})
            continue
        if kind == "ChunkPositions" and m.positions != 1:   # the front-end's row as P steps
            if stage != 0 or not spec.front or spec.positions != 1:
                raise ValueError(f"compile: module {name!r} (ChunkPositions) with positions={m.positions} "
                                 "runs in the C core right after a front-end (once per model), before the "
                                 "recurrent layers")
            spec.positions = int(m.positions)
            continue
        if kind == "ChunkMean" and m.positions != 1:   # the mean of each step's positions: the output
            if m.positions != spec.positions:
                raise ValueError(f"compile: module {name!r} (ChunkMean) averages positions={m.positions}, "
                                 f"the ChunkPositions before it makes {spec.positions}")
            mean_seen = name
            continue
        if mean_seen is not None:
            raise ValueError(f"compile: module {name!r} ({kind}) follows ChunkMean {mean_seen!r}; the C "
                             "core takes the mean over the positions as the model's output (ChunkMean last)")
        if kind in ("ChunkPositions", "ChunkMean"):   # one position: the identity
            continue
        if kind in _CHUNK_FRONT:
            if stage != 0 or spec.embedding is not None or not spec.front:
                raise ValueError(f"compile: module {name!r} ({kind}) is a chunk front-end layer; the C core "
                                 "runs it in the front-end after a layer that gives the input width "
                                 "(a FrameConv1d)")
            spec.front.extend(_chunk_records(m, name))
            continue
        if spec.embedding is not None and stage == 0 and not spec.front and rkind in ("frame_conv1d",
                                                                                     *STEP_ACTIVATIONS):
            # a per-step layer right after the embedding (Linear, activation, LayerNorm, BatchNorm)
            # maps each token's row alone: run once over the table here, the engine looks it up
            spec.embedding = _fold_into_table(m, spec.embedding)
            folded += 1
            continue
        if (spec.embedding is not None and stage == 0 and not spec.front and kind == "Residual"
                and getattr(m, "recurrent", None) is None):
            # x + f(x), f per step (raises naming the layer otherwise): each token's row alone too
            _residual_records(m, name, front=False)
            spec.embedding = _fold_into_table(m, spec.embedding)
            folded += 1
            continue
        if kind == "Embedding" and stage == 0 and spec.embedding is None and not spec.front:
            spec.embedding = _np(m.state_dict()["weight"])
        elif kind == "Residual" and (spec.embedding is None or spec.front) and stage in (0, 1, 2) and not (
                stage == 2 and spec.head is not None):
            recs, first = _residual_records(m, name, front=stage == 0)
            if stage == 0 and spec.front_input is None:   # activations before keep the width
                spec.front_input = _record_input(first[0], first[1])
            (spec.front if stage == 0 else spec.post if stage == 1 else spec.post_pooled).extend(recs)
        elif stage == 0 and spec.embedding is None and rkind in ("frame_conv1d", "conv1d", "magnitude",
                                                                 "max_pool1d", "avg_pool1d", "instance_norm",
                                                                 *STEP_ROWWISE) or (
                rkind == "log_mel" and stage == 0 and spec.embedding is None and not spec.front) or (
                stage == 0 and spec.embedding is not None and (spec.front or rkind in _EMB_FRONT_FIRST)
                and rkind in ("frame_conv1d", "conv1d", "magnitude", "max_pool1d", "avg_pool1d",
                              *STEP_ROWWISE)):
            # after an Embedding: a front-end over time (Conv1d, MaxPool1d, AvgPool1d) on the
            # looked-up rows, the embedding dim its input width, and every per-step record after it
            if spec.embedding is not None and spec.front_input is None:
                spec.front_input = int(np.shape(spec.embedding)[1])
            if spec.front_input is None:   # the first sized record (the activations before keep the width)
                spec.front_input = (int(m.in_features) if rkind == "frame_conv1d" else
                                    int(m.in_channels) if rkind == "conv1d" else
                                    int(m.channels) if rkind in ("max_pool1d", "avg_pool1d") else
                                    rec.get("n_fft" if rkind == "log_mel" else "features"))
            rec = dict(rec)
            if "tensors" in rec:
                rec["tensors"] = {k: _np(v) for k, v in rec["tensors"].items()}
            spec.front.append(rec)
        elif stage in (1, 2) and rkind in STEP_ROWWISE and not (
                stage == 2 and spec.head is not None):
            rec = dict(rec)
            if "tensors" in rec:
                rec["tensors"] = {k: _np(v) for k, v in rec["tensors"].items()}
            (spec.post if stage == 1 else spec.post_pooled).append(rec)
        elif kind == "ExtendedRecurrent" and stage <= 1:
            spec.layers.extend(extended_layers(m))
            stage = 1
        elif kind in _LN_KINDS and stage <= 1:
            spec.layers.append(layer_norm_layer(m))
            stage = 1
        elif kind == "ReverseTime":   # Keras go_backwards: folded into the next recurrent layer
            reverse_next = name
            continue
        elif cell is not None and stage <= 1:
            spec.layers.extend(_recurrent_layers(m))
            stage = 1
        elif kind in _POOLS and stage == 1:
            spec.last_step = True
            spec.last_step_bidirectional = bool(getattr(m, "bidirectional", False))
            spec.last_step_mean = kind == "MaskedMean"
            spec.last_step_max = kind == "MaskedMax"
            spec.last_step_attention = _attention_tensors(m) if kind == "AttentionPool" else None
            if getattr(m, "direction", "both") != "both":
                spec.post_pooled.append(_half_record(_front_width(spec.post, spec.layers[-1].output_size),
                                                     m.direction, name))
            stage = 2
        elif kind == "ConcatPool" and stage == 1:
            order = _concat_parts(m, name)
            spec.last_step = True
            last = m.pools[order.index("last")] if "last" in order else None
            spec.last_step_bidirectional = last is not None and bool(last.bidirectional)
            spec.last_step_mean = "mean" in order
            spec.last_step_max = "max" in order
            spec.last_step_last = "last" in order and len(order) > 1
            canon = _canonical(order)
            if order != canon:
                cols = [order.index(part) for part in canon]
                concat_perm = (name, order, cols)
            stage = 2
        elif kind == "Dropout":
            continue  # identity at inference
        elif kind == "Linear" and stage in (1, 2) and spec.head is None:
            sd = m.state_dict()
            weight = _np(sd["weight"])
            if concat_perm is not None:   # the engine's [last | mean | max] order: the columns to match
                F = weight.shape[1] // len(concat_perm[1])
                idx = np.concatenate([np.arange(k * F, (k + 1) * F) for k in concat_perm[2]])
                weight = weight[:, idx]
                concat_perm = None
            spec.head = LinearSpec(weight, _np(sd["bias"]) if "bias" in sd else None)
            head_stage, stage = stage, 3
        elif _head_act(kind) in HEAD_ACTIVATIONS and stage == 3 and spec.head.activation == "none":
            dim = getattr(m, "dim", -1)
            if kind in ("Softmax", "LogSoftmax") and dim not in (-1, 1 if spec.last_step else 2):
                raise ValueError(f"compile: module {name!r} ({kind}) has dim={dim}; the engine's head "
                                 f"normalises the features: expected -1 or {1 if spec.last_step else 2}")
            spec.head.activation = _head_act(kind)
        else:
            raise ValueError(f"compile: module {name!r} ({kind}) is not supported at this position; "
                             "expected [Embedding [Linear, activations, LayerNorm] [front-end over time: "
                             "Conv1d, MaxPool1d, AvgPool1d, then per-step layers] | front-end: Linear, "
                             "FrameConv1d, Conv1d (causal), Magnitude, activations] + recurrent layers "
                             "(per step between two of them: "
                             "Linear, activations, LayerNorm, MulHalves, Residual) + [per step: Linear, "
                             "activations, MulHalves, Residual] + [LastStep | MaskedMean | MaskedMax | "
                             "AttentionPool [Linear, activations, MulHalves, Residual]] + [Linear "
                             "[activation incl. Softmax, LogSoftmax]]")
        if reverse_next is not None and len(spec.layers) > n_before:
            _fold_reverse_time(spec.layers, n_before, reverse_next)
            reverse_next = None
    if concat_perm is not None:
        raise ValueError(f"compile: module {concat_perm[0]!r} (ConcatPool) pools in the order "
                         f"{concat_perm[1]} and no Linear follows; the engine gives "
                         f"[{' | '.join(_CONCAT_ORDER)}]: use the order {_canonical(concat_perm[1])} "
                         "(or a Linear after it, whose input columns are permuted)")
    if reverse_next is not None:
        raise ValueError(f"compile: module {reverse_next!r} (ReverseTime) must come right before a "
                         "recurrent layer (Keras go_backwards) to compile")
    if spec.positions != 1 and mean_seen is None:
        raise ValueError(f"compile: ChunkPositions makes {spec.positions} positions per step and no "
                         "ChunkMean follows; the C core's output at a step is the mean over its positions "
                         "(ChunkMean last)")
    if spec.front and spec.front_input is None and spec.layers and all(
            r["kind"] in STEP_ACTIVATIONS for r in spec.front):
        # element-wise records only (an activation reading the input): the first recurrent layer's width
        spec.front_input = spec.layers[0].input_size
    if spec.front and spec.front_input is None:
        raise ValueError("compile: a front-end must start with a layer that gives the input width "
                         "(FrameConv1d, LayerNorm, BatchNorm1d); an activation first needs "
                         "rnncore.spec.ModelSpec(front_input=...)")
    spec.validate()
    return spec


# ------------------------------------------------------------------------------------------
# the .rnc writer's description (rnncore.io.rnc) <-> ModelSpec

_KIND_TO_RNC = {"rnn_tanh": ("rnn", "tanh"), "rnn_relu": ("rnn", "relu"), "gru": ("gru", None),
                "lstm": ("lstm", None)}


def to_rnc_spec(spec: ModelSpec, precision: str, calibration=None, head: bool = True,
                state_scale: str | None = None) -> dict:
    """The ``dict`` that :func:`rnncore.io.rnc.write_rnc` takes.

    Parameters
    ----------
    spec : the float model
    precision : "f32" or "q8"
    calibration : a :class:`~rnncore.quant.Calibration` (static q8 scales) or None (dynamic)
    head : include the linear head (False when the engine applies it after pooling itself)
    state_scale : q8 state scales (:func:`rnncore.quant.scheme.activation_scales`): None (the
        calibration's, else dynamic), "dynamic", or "bounded" (1/127, GRU/LSTM/tanh RNN only)
    """
    from rnncore.quant.scheme import activation_scales

    spec.validate()
    if state_scale == "bounded":
        for k, ls in enumerate(spec.layers):
            if ls.options:
                raise ValueError(f"state_scale='bounded': layer {k} has cell options "
                                 f"({', '.join(sorted(ls.options))}); its state is not bounded in "
                                 "[-1, 1] by construction: use state_scale=None or 'dynamic'")
    if state_scale is not None and precision == "f32":
        raise ValueError(f"state_scale: q8 activation scales exist only for precision='q8' or 'q4', got "
                         f"state_scale={state_scale!r} with precision={precision!r}")
    xs, hs, head_scale = activation_scales([ls.cell for ls in spec.layers],
                                           [ls.num_directions for ls in spec.layers],
                                           head and spec.head is not None, state_scale, calibration)
    layers = []
    for k, ls in enumerate(spec.layers):
        kind, nonlin = _KIND_TO_RNC[ls.cell]
        weights = {}
        for d, w in enumerate(ls.directions):
            suf = "_reverse" if d else ""
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                weights[name + suf] = np.asarray(getattr(w, name), np.float32)
        layer = {"kind": kind, "bidirectional": ls.num_directions == 2, "weights": weights,
                 "input_size": ls.input_size, "hidden_size": ls.hidden_size}
        if nonlin:
            layer["nonlinearity"] = nonlin
        if kind == "gru":
            layer["reset_after"] = ls.reset_after
        if xs[k] is not None:
            layer["x_scale"] = xs[k]
        if any(v is not None for v in hs[k]):
            layer["h_scale"] = hs[k]
        if ls.options:
            layer["options"] = dict(ls.options)
        layers.append(layer)
    emb = None if spec.embedding is None else {"weight": np.asarray(spec.embedding, np.float32)}
    out = {"precision": precision, "input_size": spec.input_size, "layers": layers, "head": None,
           "embedding": emb, "last_step": spec.last_step,
           "last_step_bidirectional": spec.last_step_bidirectional, "last_step_mean": spec.last_step_mean,
           "last_step_max": spec.last_step_max, "last_step_last": spec.last_step_last,
           "last_step_attention": None if spec.last_step_attention is None else {
               k: np.asarray(v, np.float32) for k, v in spec.last_step_attention.items()},
           "front": list(spec.front), "post": list(spec.post), "post_pooled": list(spec.post_pooled),
           "mid": [list(m) for m in spec.mid], "positions": spec.positions}
    if head and spec.head is not None:
        w = np.asarray(spec.head.weight, np.float32)
        b = np.zeros(w.shape[0]) if spec.head.bias is None else spec.head.bias
        b = np.asarray(b, np.float32)
        out["head"] = {"weight": w, "bias": b, "activation": spec.head.activation,
                       "in_scale": head_scale}
    return out


def spec_from_rnc(d: dict) -> ModelSpec:
    """A :class:`ModelSpec` from :func:`rnncore.io.rnc.read_rnc`'s description (q8 files give the
    dequantised weights ``wq * s``)."""
    if d.get("precision") == "int8":
        raise ValueError("spec_from_rnc: a fully-integer file (precision int8) holds an integer model "
                         "(read_rnc(...)['int_model'], rnncore.io.rnc_int.read_int_rnc), not float weights")
    layers = []
    for layer in d["layers"]:
        kind = layer["kind"] if layer["kind"] != "rnn" else "rnn_" + layer.get("nonlinearity", "tanh")
        w = layer["weights"]
        dirs = [CellWeights(w["weight_ih" + suf], w["weight_hh" + suf],
                            w["bias_ih" + suf], w["bias_hh" + suf])
                for suf in ("", "_reverse")[: 2 if layer["bidirectional"] else 1]]
        o = layer.get("options")
        o = None if o is None else {k: v for k, v in o.items() if k in OPTION_KEYS}
        layers.append(LayerSpec(kind, layer["input_size"], layer["hidden_size"], dirs,
                                bool(layer.get("reset_after", True)), o))
    emb = d.get("embedding")
    head = d.get("head")
    lin = None if head is None else LinearSpec(head["weight"], head["bias"], head["activation"])
    spec = ModelSpec(layers, embedding=None if emb is None else emb["weight"],
                     last_step=bool(d.get("last_step")),
                     last_step_bidirectional=bool(d.get("last_step_bidirectional")),
                     last_step_mean=bool(d.get("last_step_mean")),
                     last_step_max=bool(d.get("last_step_max")),
                     last_step_last=bool(d.get("last_step_last")),
                     last_step_attention=d.get("last_step_attention"), head=lin,
                     front=list(d.get("front") or []), post=list(d.get("post") or []),
                     post_pooled=list(d.get("post_pooled") or []),
                     front_input=d["input_size"] if d.get("front") else None,
                     mid=[list(m) for m in d.get("mid") or []], positions=int(d.get("positions") or 1))
    spec.validate()
    return spec


# ------------------------------------------------------------------------------------------
# model -> .rnc bytes, in Python (no compiled extension needed)

PRECISIONS = ("f32", "q8", "q4")


def build_rnc(model: object, precision: str = "f32", calibration: object = None,
              state_scale: str | None = None, sparse: object = None,
              front_f32: object = None, front_bits: int = 8) -> tuple[bytes, ModelSpec]:
    """Describe ``model`` and write it as ``.rnc`` bytes: what ``rc.compile`` loads and
    ``rnncore convert`` writes, without the C engine.

    Parameters
    ----------
    model : an ``rc.nn.RNN`` / ``GRU`` / ``LSTM``, an ``rc.nn.Sequential`` of
        ``[Embedding] + recurrent layers + [LastStep] + [Linear]`` (Dropout is skipped), or a
        :class:`ModelSpec`
    precision : "f32", "q8" or "q4" (int4 weights, q8 activations: docs/q8-contract.md, "q4 weights")
    calibration : q8 and q4 only: None (dynamic activation scales), representative inputs
        ``X (B, T, I)`` (or ``(X, lengths)``) measured with :func:`rnncore.quant.calibrate`, or a
        :class:`~rnncore.quant.Calibration`
    state_scale : q8 only: the hidden states' scales: None (the calibration's, else dynamic),
        "dynamic", or "bounded" (the fixed scale 1/127 of states in [-1, 1]: GRU, LSTM, tanh RNN;
        docs/q8-contract.md, "The bounded state scale")
    sparse : q8 only: None (dense weights), True or ``{"max_density": d, "block_rows": 8 | 16}``:
        each weight matrix whose share of nonzero blocks is at most d (default 0.5, 16-row blocks)
        is stored block-sparse (docs/rnc-format.md), the others stay dense
    front_f32 : q8 only: None (every frame_conv and conv_time int8), or the convolution records of
        the front-end to keep in float32: an integer ``n`` is the n-th frame_conv (0: the first),
        ``"conv_time:n"`` the n-th conv_time (a Conv1d over time), ``"frame_conv:n"`` the n-th
        frame_conv; e.g. ``[2, "conv_time:0"]`` (docs/q8-contract.md, "A frame_conv or conv_time
        kept in float32"; :func:`rnncore.quant.choose_front_f32` measures which)
    front_bits : q8 only: 8 (default: int8 weights and int8 input codes in the frame_convs) or 16
        (int16 weights and int16 input codes, exact int64 sums: every frame_conv not kept in float32
        by ``front_f32``; docs/q8-contract.md, "A 16-bit product in the frame convolutions")

    Returns
    -------
    data : the file's bytes (:func:`rnncore.io.rnc.write_rnc` of :func:`to_rnc_spec`)
    spec : the model's :class:`ModelSpec`
    """
    from rnncore.io.rnc import write_rnc
    from rnncore.quant.reference import Calibration

    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    spec = spec_from_model(model)
    cal = None
    if calibration is not None:
        if precision == "f32":
            raise ValueError("calibration: static activation scales exist only for precision='q8' or 'q4'")
        if isinstance(calibration, Calibration):
            _check_calibration_object(spec, calibration)
            cal = calibration
        else:
            from rnncore.quant.calibrate import calibrate

            cx, cl = calibration if isinstance(calibration, tuple) and len(calibration) == 2 \
                else (calibration, None)
            _check_calibration(spec, cx, cl)
            cal = calibrate(spec, cx, cl, _stacklevel=4)   # a warning points at compile's caller
    if sparse is not None and sparse is not False and precision != "q8":
        raise ValueError("sparse: block-sparse weights exist only for precision='q8', "
                         f"got precision={precision!r}")
    out = to_rnc_spec(spec, precision, cal, state_scale=state_scale)
    if front_f32 is not None:
        out["front"] = _front_f32(out["front"], front_f32, precision)
    if isinstance(front_bits, bool) or front_bits not in (8, 16):
        raise ValueError(f"front_bits: expected 8 or 16 (the frame_convs' weight and input code bits), "
                         f"got {front_bits!r}")
    if front_bits == 16:
        out["front"] = _front_bits16(out["front"], precision)
    if sparse is not None:
        out["sparse"] = sparse
    return write_rnc(out), spec


def _front_bits16(records: list, precision: str) -> list:
    """``records`` with every int8 frame_conv marked 16 x 16 (``bits=16``)."""
    if precision != "q8":
        raise ValueError(f"front_bits: 16-bit frame_convs exist only for precision='q8', "
                         f"got precision={precision!r}")
    convs = [i for i, r in enumerate(records or [])
             if str(r.get("kind", "")).lower() in ("frame_conv1d", "frame_conv")]
    if not convs:
        raise ValueError("front_bits: 16 applies to frame_conv records (a Conv1d within each step's frame); "
                         "the model has none")
    return [{**r, "bits": 16} if i in convs and r.get("precision", precision) == "q8" else r
            for i, r in enumerate(records)]


#: the front-end records ``front_f32`` can keep in float32 inside a q8 file, by the name its items
#: use (``"conv_time:0"``), and the record kinds of each (a ModelSpec's and read_rnc's)
FRONT_F32_KINDS = {"frame_conv": ("frame_conv1d", "frame_conv"), "conv_time": ("conv1d", "conv_time")}


def front_conv_records(records: list) -> dict:
    """The front-end's convolution records by ``front_f32`` name: ``{"frame_conv": [i, ...],
    "conv_time": [i, ...]}``, the indices into ``records`` in order."""
    return {name: [i for i, r in enumerate(records or []) if str(r.get("kind", "")).lower() in kinds]
            for name, kinds in FRONT_F32_KINDS.items()}


def _front_f32_index(n: object, convs: dict) -> int:
    """The index into the front-end records of one ``front_f32`` item: an integer ``n`` (the n-th
    frame_conv) or ``"frame_conv:n"`` / ``"conv_time:n"`` (the n-th record of that kind)."""
    if isinstance(n, str):
        name, sep, num = n.partition(":")
        if not sep or name not in FRONT_F32_KINDS:
            raise ValueError(f"front_f32: expected an integer (a frame_conv number) or 'frame_conv:N' / "
                             f"'conv_time:N' (the records a q8 file can keep in float32), got {n!r}")
        if not (num.isascii() and num.isdigit()) or not int(num) < len(convs[name]):
            raise ValueError(f"front_f32: expected {name} numbers in [0, {len(convs[name])}) (the model has "
                             f"{len(convs[name])} {name} records), got {n!r}")
        return convs[name][int(num)]
    nf, nt = len(convs["frame_conv"]), len(convs["conv_time"])
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 0 <= int(n) < nf:
        alt = f", or 'conv_time:N' ({nt} conv_time records)" if nt else ""
        raise ValueError(f"front_f32: expected frame_conv numbers in [0, {nf}) (the model has {nf} "
                         f"frame_conv records){alt}, got {n!r}")
    return convs["frame_conv"][int(n)]


def _front_f32(records: list, which: object, precision: str) -> list:
    """``records`` with the convolution records ``which`` names marked float32: an integer ``n`` the
    n-th frame_conv (0: the first), ``"conv_time:n"`` the n-th conv_time, ``"frame_conv:n"`` the
    n-th frame_conv."""
    convs = front_conv_records(records)
    if precision != "q8":
        raise ValueError(f"front_f32: a frame_conv or conv_time kept in float32 inside an int8 file exists "
                         f"only for precision='q8', got precision={precision!r}")
    if isinstance(which, str | bytes) or not hasattr(which, "__iter__"):
        raise TypeError(f"front_f32: expected None or a sequence of frame_conv numbers (or 'conv_time:N'), "
                        f"got {which!r}")
    keep = {_front_f32_index(n, convs) for n in which}
    return [{**r, "precision": "f32"} if i in keep else r for i, r in enumerate(records)]


def extended_layers(mod) -> list[LayerSpec]:
    """The :class:`LayerSpec` s (with ``options``) of an
    :class:`rnncore.nn.extended.ExtendedRecurrent`.

    """
    mode = mod.mode
    D = 2 if mod.bidirectional else 1
    sd = {k: _np(v) for k, v in mod.state_dict().items()}
    init = getattr(mod, "initial_state", None)
    if init is not None and mode == "LSTM":
        h0_all, c0_all = (np.asarray(v) for v in init)
    else:
        h0_all, c0_all = (None if init is None else np.asarray(init)), None
    acts = [[(n, float(a), float(b)) for n, a, b in d] for d in mod.activations]
    cell = {"GRU": "gru", "LSTM": "lstm"}.get(mode, "rnn_tanh")
    if mode == "RNN" and all(d == [("relu", 0.0, 0.0)] for d in acts):
        cell = "rnn_relu"
    layers = []
    for k in range(mod.num_layers):
        sub = {n.replace(f"_l{k}", "_l0"): v for n, v in sd.items()
               if n.endswith(f"_l{k}") or n.endswith(f"_l{k}_reverse")}
        [ls] = layers_from_state_dict(cell, sub, 1, mod.bidirectional, mod.reset_after)
        opts: dict = {"activations": acts, **(ls.options or {})}
        if mod.reverse:
            opts["reverse"] = True
        if mod.clip is not None:
            opts["clip"] = mod.clip
        if mod.input_forget:
            opts["input_forget"] = True
        if mod.peepholes:
            sfx = ("", "_reverse")[:D]
            opts["peepholes"] = np.stack([sd[f"peephole_l{k}{s}"] for s in sfx])
        if h0_all is not None:
            opts["initial_h"] = h0_all[k * D:(k + 1) * D]
        if c0_all is not None:
            opts["initial_c"] = c0_all[k * D:(k + 1) * D]
        ls.options = opts
        layers.append(ls)
    return layers


def _fold_reverse_time(layers: list[LayerSpec], first: int, name: str) -> None:
    """``ReverseTime`` then a forward layer (Keras ``go_backwards``) = that layer reading each
    sequence from its end with its outputs in processing order (options ``reverse`` and
    ``reverse_output``). Only a one-layer, one-direction, forward recurrent module folds."""
    new = layers[first:]
    o = new[0].options or {}
    if len(new) != 1 or new[0].num_directions != 1 or o.get("reverse"):
        raise ValueError(f"compile: module {name!r} (ReverseTime) before a stacked, bidirectional or "
                         "reverse recurrent module does not compile; only go_backwards on one layer")
    new[0].options = {**o, "reverse": True, "reverse_output": True}


def _fold_extended(model):
    """An :class:`rnncore.nn.extended.ExtendedRecurrent` becomes its :class:`ModelSpec` (options in
    ``LayerSpec.options``); other models are returned as they are."""
    from rnncore.nn.extended import ExtendedRecurrent

    if isinstance(model, ExtendedRecurrent):
        spec = ModelSpec(extended_layers(model))
        spec.validate()
        return spec
    return model


def _check_calibration_object(spec: ModelSpec, cal) -> None:
    """A Calibration measured on another model (other layer count, directions or head) is refused."""
    want = [layer.num_directions for layer in spec.layers]
    got_x, got_h = len(cal.x_scale), [len(h) for h in cal.h_scale]
    if got_x != len(want) or got_h != want or (cal.head_scale is None) != (spec.head is None):
        raise ValueError(
            f"calibration: a Calibration for {got_x} layer(s) with directions {got_h} and "
            f"{'no ' if cal.head_scale is None else ''}head scale, but this model has {len(want)} layer(s) "
            f"with directions {want} and {'a' if spec.head is not None else 'no'} head; calibrate this model")
    scales = list(cal.x_scale) + [v for h in cal.h_scale for v in h] + (
        [cal.head_scale] if cal.head_scale is not None else [])
    if not all(np.isfinite(v) and v >= 0 for v in scales):  # 0: dynamic, as in the .rnc file
        raise ValueError(f"calibration: scales must be finite and >= 0, got {scales}")


def _check_calibration(spec: ModelSpec, X, lengths) -> None:
    """Shapes of q8 calibration data, checked before any arithmetic (ValueError/TypeError)."""
    a = np.asarray(X)
    if spec.embedding is not None:
        vocab = np.shape(spec.embedding)[0]
        if a.dtype.kind not in "iu" or a.ndim != 2:
            raise TypeError(f"calibration: expected integer token ids (batch, T) for a model with an "
                            f"embedding, got shape {a.shape}, dtype {a.dtype}")
        if a.size and (a.min() < 0 or a.max() >= vocab):
            raise ValueError(f"calibration: token ids must be in [0, {vocab}), got [{a.min()}, {a.max()}]")
    else:
        if a.dtype.kind not in "fiu":
            raise TypeError(f"calibration: expected a float array (batch, T, {spec.input_size}), got "
                            f"dtype {a.dtype}")
        if a.ndim != 3 or a.shape[2] != spec.input_size:
            raise ValueError(f"calibration: expected X of shape (batch, T, {spec.input_size}) "
                             f"(input_size {spec.input_size}), got {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"calibration: X has no steps to measure (shape {a.shape})")
    if lengths is not None:
        n = np.asarray(lengths)
        if n.dtype.kind not in "iu" or n.shape != (a.shape[0],):
            raise ValueError(f"calibration: lengths: expected {a.shape[0]} integers (one per sequence), "
                             f"got shape {n.shape}, dtype {n.dtype}")
        if n.min() < 0 or n.max() > a.shape[1]:
            raise ValueError(f"calibration: lengths: expected values in [0, {a.shape[1]}], got "
                             f"[{n.min()}, {n.max()}]")
        if n.max() == 0:
            raise ValueError("calibration: every length is 0; no steps to measure")
