"""Import PyTorch recurrent models: ``rc.io.from_torch(module_or_state_dict)``.

rnncore's reference uses PyTorch's ``state_dict`` layout, so ``nn.RNN/GRU/LSTM`` weights
copy over unchanged (gate order GRU ``r, z, n``, LSTM ``i, f, g, o``; PyTorch's GRU is the
reset-after form). What needs care is everything around them:

* ``batch_first=False`` modules read ``(T, B, F)``; the imported model always reads
  ``(B, T, F)`` (rnncore's convention), whichever ``batch_first`` the source had.
* ``dropout`` between layers only acts in training and is ignored.
* ``bias=False`` becomes zero biases.
* a container module (your own ``nn.Module`` subclass or ``nn.Sequential``) is imported
  when its leaves are, in registration order, an optional ``nn.Embedding``, one or more
  recurrent layers and ``nn.Linear`` heads (``nn.Dropout``/``nn.Identity`` are skipped).
  Its ``forward`` is Python code that the importer cannot read, so it *runs* the module on
  a random batch (and, for a ``forward(x, lengths)`` that packs its input, sorted lengths that
  the imported model then takes as ``lengths=``; a ``forward(input, hidden)`` runs with
  ``hidden=None``, a zero initial state, and a per-step output flattened by ``.view(-1, F)`` is
  read as the steps' rows) and keeps the interpretation — head on
  every step, on the last step (``rc.nn.LastStep``), on the mean over time
  (``rc.nn.MaskedMean``) or on the maximum over time (``rc.nn.MaskedMax``; a maximum over
  ``pad_packed_sequence``'s zero padding, ``max(valid maximum, 0)`` for a short sequence, is
  refused, naming the module, and so is a maximum when no probe batch tells the two apart); after
  a bidirectional layer also on one direction's final state,
  ``h_n[-1]`` / ``h_n[-2]`` (``LastStep(bidirectional=True)`` then the head with weights
  ``[0 | W]`` / ``[W | 0]``; without a Linear head, or through an ``nn.LayerNorm`` before it, a packed
  forward's ``LastStep(bidirectional=True, direction=...)``); for a packed ``forward(x, lengths)`` also
  2 or 3 of the last step, the mean and the maximum concatenated over the features, in any order
  (``rc.nn.ConcatPool``: Kaggle's ``torch.cat([mean, max], 1)``, fastai's ``masked_concat_pool``;
  one over ``pad_packed_sequence``'s zero padding refused by name), each also followed by a softmax or
  log_softmax over the features
  (``torch.softmax(fc(h), -1)``, ``F.log_softmax``, ``nn.Softmax(dim=-1)`` / ``nn.LogSoftmax``:
  ``rc.nn.Softmax`` / ``rc.nn.LogSoftmax``) — whose output matches; if none does (a softmax over
  time, say), it refuses rather than guess. A softmax saturated on the batch (one-hot: several
  interpretations match) is decided by the output of the module's last ``nn.Linear``, captured
  during the probe: the interpretation whose logits it is (else refused).
* a container that also holds front-end layers (``nn.Conv1d``, ``nn.MaxPool1d``/``AvgPool1d``,
  ``nn.BatchNorm1d``, ``nn.LayerNorm``, activation modules), or whose output none of the
  interpretations above reproduces (an activation between the layers, say), is read from its ``forward`` with
  ``torch.fx`` (:mod:`rnncore.io.torch_fx`): a chain of layers, transposes/permutes between
  PyTorch's ``(B, C, T)`` and ``(B, T, F)``, ``y[:, -1]``, ``y.mean(1)``, ``h_n[-1]``, attention
  pooling over time (``rc.nn.AttentionPool``) and activation functions; the imported model reads
  and returns ``(B, T, F)``, and its ``torch_layout`` says which axes the module's own input and
  output had.

torch is imported only inside :func:`from_torch`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping

import numpy as np

from rnncore.io import _build
from rnncore.nn.module import Module
from rnncore.spec import ModelSpec

__all__ = ["from_torch"]

_RECURRENT = {"RNN", "GRU", "LSTM"}
_SKIPPED = {"Dropout", "Identity"}
_CONTAINERS = {"ModuleList", "Sequential", "ModuleDict"}
_CELLS = {"RNNCell": "RNN", "GRUCell": "GRU", "LSTMCell": "LSTM"}
_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def _np(t) -> np.ndarray:
    if not hasattr(t, "detach"):
        return np.asarray(t)
    import torch

    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()     # NumPy has no bfloat16; float32 holds every bfloat16 value exactly
    return t.numpy()


def _recurrent_from_state_dict(sd: Mapping[str, object], mode: str | None, nonlinearity: str,
                               dtype: str) -> Module:
    bad = [k for k in sd if not (isinstance(k, str) and _KEY.match(k))]
    if bad:
        _refuse_state_dict(sd, bad)
    sd = {k: _np(v) for k, v in sd.items()}
    layers = 1 + max(int(_KEY.match(k).group(2)) for k in sd)
    bidirectional = any(k.endswith("_reverse") for k in sd)
    w_ih, w_hh = sd["weight_ih_l0"], sd["weight_hh_l0"]
    proj = "weight_hr_l0" in sd
    H = sd["weight_hr_l0"].shape[1] if proj else w_hh.shape[1]
    P = w_hh.shape[1]
    G = w_ih.shape[0] // H
    inferred = {1: "RNN", 3: "GRU", 4: "LSTM"}.get(G) if w_ih.shape[0] == G * H else None
    if mode is None:
        if inferred is None:
            raise ValueError(
                f"from_torch: weight_ih_l0 {w_ih.shape} with hidden size {H} is not an RNN/GRU/LSTM")
        mode = inferred
    elif mode.upper() != inferred:
        raise ValueError(f"from_torch: mode={mode!r} but the weight shapes say {inferred}")
    if mode.upper() != "RNN" and nonlinearity != "tanh":
        raise ValueError(f"from_torch: nonlinearity={nonlinearity!r} is for an nn.RNN's state dict; the "
                         f"weights are an nn.{mode.upper()}'s (expected nonlinearity='tanh', the default)")
    D = 2 if bidirectional else 1
    biases = [f"{b}_l{k}{sfx}" for k in range(layers) for sfx in ("", "_reverse")[:D]
              for b in ("bias_ih", "bias_hh")]
    missing = [b for b in biases if b not in sd]
    if missing and len(missing) != len(biases):
        # bias=False has none; a state dict with some is damaged, not bias-free
        raise ValueError(f"from_torch: the state dict has biases but not {missing[:4]}"
                         f"{' ...' if len(missing) > 4 else ''} (expected all {len(biases)} or none)")
    for b in missing:
        sd[b] = np.zeros(G * H, w_ih.dtype)
    return _build.recurrent(mode.upper(), sd, input_size=w_ih.shape[1], hidden_size=H, num_layers=layers,
                            bidirectional=bidirectional, proj_size=P if proj else 0,
                            nonlinearity=nonlinearity, dtype=dtype)


def _refuse_state_dict(sd: Mapping, bad: list) -> None:
    """Say what a state dict that is not one recurrent module's is, and what to do instead."""
    keys = [k for k in sd if isinstance(k, str)]
    owners = list(dict.fromkeys(k.rsplit(".", 1)[0] for k in keys if "." in k))
    if owners and any(_KEY.match(k.rsplit(".", 1)[1]) for k in keys if "." in k):
        shown = ", ".join(repr(o) for o in owners[:6]) + (", ..." if len(owners) > 6 else "")
        raise ValueError(
            f"from_torch: this is the state_dict of a container module (submodules {shown}); a "
            "state_dict does not say how the module's forward combines them. Build the module in "
            "PyTorch, module.load_state_dict(state_dict), then rc.io.from_torch(module); or export it "
            "with torch.onnx.export and import the .onnx (rnncore convert model.onnx -o model.rnc)")
    raise ValueError(f"from_torch: keys {bad[:8]}{' ...' if len(bad) > 8 else ''} are not "
                     "nn.RNN/GRU/LSTM parameters (expected weight_ih_l0, weight_hh_l0, bias_ih_l0, ...)")


def _matches(y: np.ndarray, ref: np.ndarray, tol: float) -> bool:
    """``y`` is the module's output ``ref`` within ``tol`` of ``max(1, max |ref|)``: relative to the
    output's scale, not element by element (a float32 module's large outputs, an exploding ReLU RNN's,
    carry rounding errors of the order of the largest times 1e-7 in every element, small ones too)."""
    if y.shape != ref.shape:
        return False
    if y.size == 0:
        return True
    return bool(np.abs(y - ref).max() <= tol * max(1.0, float(np.abs(ref).max())))


def _kind(m) -> str:
    """The class name of a torch module; a parametrized one's (``ParametrizedGRU``) is its original's."""
    from torch.nn.utils import parametrize

    cls = type(m).__mro__[1] if parametrize.is_parametrized(m) else type(m)
    return cls.__name__


def _weights(m, names) -> dict:
    """The weights the module computes with, by name: read as attributes, so that a weight under
    ``torch.nn.utils.weight_norm`` (state_dict ``*_g``, ``*_v``) or a parametrization
    (``parametrizations.*.original``) is the tensor its forward uses."""
    return {k: _np(getattr(m, k)) for k in names}


def _convert_leaf(m, name: str, dtype: str):
    """rnncore module for one torch leaf, or None for a skipped one."""
    kind = _kind(m)
    if kind in _RECURRENT:
        return _recurrent_from_state_dict(_weights(m, m._flat_weights_names), kind,
                                          getattr(m, "nonlinearity", "tanh"), dtype)
    if kind in _CELLS:
        # one step of a one-layer network: the cell's weights are layer 0's
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if m.bias else [])
        sd = {f"{k}_l0": v for k, v in _weights(m, names).items()}
        return _recurrent_from_state_dict(sd, _CELLS[kind], getattr(m, "nonlinearity", "tanh"), dtype)
    if kind == "Linear":
        return _build.linear(_np(m.weight), None if m.bias is None else _np(m.bias), dtype)
    if kind == "Embedding":
        if m.max_norm is not None:
            raise ValueError(f"from_torch: {name} (nn.Embedding with max_norm) renormalises rows at "
                             "lookup time, which rnncore does not do")
        return _build.embedding(_np(m.weight), m.padding_idx, dtype)
    if kind in _SKIPPED:
        return None
    if kind in _TWO_D:
        return _convert_2d(m, kind, name, dtype)
    raise ValueError(
        f"from_torch: unsupported module {name!r} of type {type(m).__module__}.{kind}; supported are "
        "nn.RNN, nn.GRU, nn.LSTM, their Cell versions, nn.Linear, nn.Embedding, and alone nn.Conv2d, "
        "nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d, nn.BatchNorm2d (nn.Dropout/nn.Identity are skipped)"
    )


_FINAL = {"Softmax": "softmax", "LogSoftmax": "log_softmax"}
_TWO_D = {"Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d"}


def _convert_2d(m, kind: str, name: str, dtype: str):
    """The rc.nn 2-D layer (``(N, C, H, W)``, PyTorch's layout) of one torch 2-D module; what it
    cannot express (a padding mode other than zeros, ``padding='same'`` of a transposed
    convolution, ``divisor_override``, ``return_indices``, ``track_running_stats=False``) refused."""
    from rnncore.nn import conv2d

    def refuse(arg, want, got):
        raise ValueError(f"from_torch: {name!r} (nn.{kind}) has {arg}={got!r}; rnncore's {kind} takes "
                         f"{arg}={want!r}")

    if kind in ("Conv2d", "ConvTranspose2d"):
        if m.padding_mode != "zeros":
            refuse("padding_mode", "zeros", m.padding_mode)
        bias = None if m.bias is None else _np(m.bias)
        if kind == "Conv2d":
            layer = conv2d.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                  m.dilation, m.groups, bias is not None, dtype)
        else:
            layer = conv2d.ConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                           m.output_padding, m.groups, bias is not None, m.dilation, dtype)
        layer.params["weight"] = _np(m.weight).astype(dtype)
        if bias is not None:
            layer.params["bias"] = bias.astype(dtype)
        return layer
    if kind == "MaxPool2d":
        if m.return_indices:
            refuse("return_indices", False, True)
        return conv2d.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, bool(m.ceil_mode), dtype)
    if kind == "AvgPool2d":
        if m.divisor_override is not None:
            refuse("divisor_override", None, m.divisor_override)
        return conv2d.AvgPool2d(m.kernel_size, m.stride, m.padding, bool(m.ceil_mode),
                                bool(m.count_include_pad), dtype)
    if not m.track_running_stats:
        refuse("track_running_stats", True, False)
    layer = conv2d.BatchNorm2d(m.num_features, m.eps, m.momentum, m.affine, dtype)
    if m.affine:
        layer.params["weight"], layer.params["bias"] = _np(m.weight).astype(dtype), _np(m.bias).astype(dtype)
    for k in ("running_mean", "running_var"):
        layer.buffers[k] = _np(getattr(m, k)).astype(dtype)
    layer.buffers["num_batches_tracked"] = np.asarray(int(m.num_batches_tracked), np.int64)
    return layer


def _leaves(module, prefix=""):
    from torch.nn.utils import parametrize

    # a parametrized module (weight_norm, ...) holds its parametrizations as children
    children = [] if parametrize.is_parametrized(module) else list(module.named_children())
    if not children and _kind(module) in _CONTAINERS:
        return          # an empty nn.ModuleList / Sequential / ModuleDict (an optional stage left out)
    if not children:
        yield prefix or type(module).__name__, module
        return
    if list(module.named_parameters(recurse=False)):
        raise ValueError(f"from_torch: module {prefix or type(module).__name__!r} "
                         f"({type(module).__name__}) has parameters of its own besides its children")
    for n, c in children:
        yield from _leaves(c, f"{prefix}.{n}" if prefix else n)


#: the names of a forward's initial-state argument: forward(input, hidden) of the word_language_model
_STATE_ARGUMENT = re.compile(r"hidden|hx|h0|h_0|state|init_h|hc", re.IGNORECASE)


def _forward_state_argument(module) -> str | None:
    """The name of ``forward``'s second argument when it is the only other one it needs, is named as
    an initial state (``hidden``, ``hx``, ``h0``, ``state``, ...: pytorch/examples'
    ``word_language_model``'s ``forward(input, hidden)``) and the module holds a recurrent module, else
    None. The importer runs such a forward
    with that argument ``None`` (a zero initial state for ``nn.RNN/GRU/LSTM``) and compares."""
    import inspect

    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    needed = [p.name for p in positional[1:] if p.default is p.empty]
    needed += [p.name for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
    # (a hand-written cell, no recurrent module inside, is refused by _forward_lengths_argument)
    if len(needed) == 1 and len(positional) >= 2 and positional[1].name == needed[0] and \
            _STATE_ARGUMENT.search(needed[0]) and not re.search(r"len", needed[0], re.IGNORECASE) and \
            any(_kind(c) in _RECURRENT | set(_CELLS) for c in module.modules()):
        return needed[0]
    return None


def _with_zero_state(module, name: str):
    """A module of ``module``'s class name whose ``forward(x)`` is ``module.forward(x, None)`` (its
    ``name`` argument None: a zero initial state), holding ``module`` as its only child."""
    import torch

    def forward(self, x):
        return self.module(x, None)

    wrapper = type(type(module).__name__, (torch.nn.Module,), {"forward": forward})()
    wrapper.module = module
    wrapper.train(module.training)
    wrapper.zero_state_argument = name
    return wrapper


def _forward_lengths_argument(module) -> str | None:
    """None for a container whose forward takes the input alone; the name of its second argument
    when that is the only other one it needs and is named as lengths (``lengths``, ``seq_lens``,
    ``input_lengths``, ...: a ``pack_padded_sequence`` wrapper, which the probe runs with lengths
    and checks against the model's ``lengths=``); a refusal for anything else it needs (an
    initial state, a second input): the importer runs forward without it."""
    import inspect

    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):   # a builtin forward: nothing to read
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    needed = [p.name for p in positional[1:] if p.default is p.empty]
    needed += [p.name for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
    if not needed:
        return None
    if len(needed) == 1 and len(positional) >= 2 and positional[1].name == needed[0] and \
            re.search(r"len", needed[0], re.IGNORECASE):
        return needed[0]
    cls = type(module).__name__
    recs = [n for n, c in module.named_modules() if n and _kind(c) in _RECURRENT | set(_CELLS)]
    what = (f"import the recurrent layer itself (rc.io.from_torch(module.{recs[0]})) and give run/forward "
            "the state (state=) or the lengths (lengths=)" if len(recs) == 1 else
            "build the rnncore model with rc.nn.Sequential and load the converted weights")
    if not recs:
        # the old char-RNN tutorial's i2h(torch.cat((input, hidden), 1)), stepped by the caller's loop
        what = (f"{cls} holds no nn.RNN/GRU/LSTM or cell module: its forward is one step of a hand-written "
                "cell, stepped by a loop the importer does not see; " + what)
    elif any(n not in ("", recs[0]) and not n.startswith(recs[0] + ".") and not list(c.children()) and
             list(c.parameters()) for n, c in module.named_modules()):
        # the word_language_model's forward(input, hidden): its embedding and decoder are imported too
        # by the same modules' forward(x), whose recurrent call gets no state (zeros)
        what += (f"; or, for the whole chain, import a module whose forward(x) calls the same modules "
                 f"without {', '.join(repr(n) for n in needed)} (a zero initial state; load_state_dict "
                 "gives it the trained weights)")
    raise ValueError(
        f"from_torch: {cls}.forward({', '.join(p.name for p in params)}) needs the argument"
        f"{'s' if len(needed) > 1 else ''} {', '.join(repr(n) for n in needed)} besides the input; the "
        f"importer runs forward on the input alone, or with the lengths as its second argument "
        f"(expected forward(x) or forward(x, lengths), received "
        f"forward({', '.join(p.name for p in positional[:1])}, {', '.join(needed)})): {what}")


def _one_softmax_match(name: str, outputs: dict, ref_of, tol: float, module, logits) -> str:
    """The softmax interpretation to import when ``name``'s reproduces the module's output: ``name``, or
    when others whose logits differ from its own reproduce it too (a saturated softmax: a confident
    head's outputs are one-hot for the last step and for the mean over time alike), the one of them
    whose logits (its chain without the softmax) are ``logits``, the output of the module's last
    ``nn.Linear`` captured during the probe call (None: not captured; ``ref_of`` puts it in the
    interpretation's layout). That output decides only when it is the softmax's input
    (``softmax(logits)`` reproduces the module's output) and exactly one interpretation's logits are
    it; otherwise the import is refused, naming the interpretations."""
    def out(n: str) -> np.ndarray:
        y = outputs[n][1]
        return y[0] if isinstance(y, tuple) else y

    def base(n: str) -> str:
        return n[:-len("+softmax")]

    tied = [name] + [other for other in outputs if other != name and other.endswith("+softmax")
                     and base(other) in outputs and _matches(out(other), ref_of(other), tol)
                     and not _matches(out(base(other)), out(base(name)), tol)]
    if len(tied) == 1:
        return name
    decided, inputs = [], 0
    if logits is not None:
        for n in tied:
            z = ref_of(n, logits)
            # the captured Linear output is the softmax's input: its softmax is the module's output
            p = np.exp(z - z.max(axis=-1, keepdims=True))
            if _matches(p / p.sum(axis=-1, keepdims=True), ref_of(n), tol):
                inputs += 1
                if _matches(out(base(n)), z, tol) and outputs[n][0] is not None:
                    decided.append(n)
    if len(decided) == 1:
        return decided[0]
    why = ("it has no nn.Linear leaf or calls its last one more than once" if logits is None else
           "its last nn.Linear's output is not the softmax's input" if not inputs else
           f"its last nn.Linear's output (the softmax's input) is the logits of "
           f"{', '.join(repr(base(n)) for n in decided) or 'none'} of them")
    raise ValueError(
        f"from_torch: {type(module).__name__}.forward ends in a softmax that is saturated on a "
        f"random batch: both '{base(tied[0])}' and '{base(tied[1])}' reproduce its output although "
        f"their logits differ, and {why}, so the probe cannot tell how it combines the steps; return the "
        "logits (or log_softmax) from forward to import it, and apply the softmax after")


def _softmax_reads_logits(module, probe, args: tuple, linear, logits: np.ndarray, tol: float) -> None:
    """Refuse unless the module's final softmax reads its last ``nn.Linear``'s output ``logits`` as they
    are (no temperature, scale or offset between them), checked where the softmax is not saturated.

    A saturated softmax is one-hot for ``softmax(z)`` and ``softmax(z / temperature)`` alike, so the
    probe's match cannot see a scale after the Linear. ``probe`` (the module, or its float32 copy)
    runs again on ``args`` with the Linear's output divided by ``K`` (its largest spread of logits
    over 8, when above 1): the module's output must then be ``softmax(logits / K)``."""
    import torch

    K = float((logits.max(axis=-1) - logits.min(axis=-1)).max()) / 8.0
    if not K > 1.0:   # not saturated: the probe's match has seen the softmax's input scale
        return
    was_training = probe.training
    probe.eval()
    hook = linear.register_forward_hook(lambda m, i, o: o / K)
    try:
        with torch.no_grad():
            out = probe(*args)
    finally:
        probe.train(was_training)
        hook.remove()
    out = _np(out[0] if isinstance(out, tuple | list) else out).astype(np.float64)
    z = logits / K
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    if not _matches(out, p / p.sum(axis=-1, keepdims=True), tol):
        raise ValueError(
            f"from_torch: {type(module).__name__}.forward ends in a softmax that is saturated on a random "
            "batch, and with its last nn.Linear's output scaled down (so that the softmax is not saturated) "
            "its output is not the softmax of that output: something (a temperature, a scale) stands "
            "between the Linear and the softmax, which the probe cannot read; return the logits (or "
            "log_softmax) from forward to import it, and apply the softmax after")


#: random batches the probe of a forward(x, lengths) draws at most to find one on which the maximum
#: over the valid steps and the maximum over pad_packed_sequence's zero padding differ (_max_padded)
_PROBE_DRAWS = 16


def _max_padded(runs: dict, body: list, heads: list, x: np.ndarray, lengths: np.ndarray, tol: float) -> bool:
    """Add to ``runs`` the interpretation "maximum over time of the zero-padded batch" (``"max-padded"``,
    model None, what ``torch.max(pad_packed_sequence(...)[0], 1)`` computes: the valid steps and zeros),
    then the heads, and its softmax / log_softmax; return True when its output differs from the
    maximum over the valid steps (``"max"``) on this batch, so that only one of them can match.

    They are equal when every short sequence's valid maxima are positive (then the zeros never
    win): a batch on which they agree cannot tell them apart."""
    if "max" not in runs:
        return True
    y = _build.sequential(body).forward(x, lengths=lengths)
    z = (y[0] if isinstance(y, tuple) else y).max(axis=1)   # rnncore's sequence is zero past the lengths
    for h in heads:
        z = h.forward(z)
    runs["max-padded"] = (None, z)
    for f in _FINAL.values():
        runs[f"max-padded+{f}"] = (None, _build.activation(f).forward(z))
    ref = runs["max"][1]
    return not _matches(z, ref[0] if isinstance(ref, tuple) else ref, 10 * tol)


def _layer_norm_leaf(m, name: str, dtype: str):
    """``rc.nn.LayerNorm`` of a torch ``nn.LayerNorm`` over the last axis; another shape refused."""
    if len(m.normalized_shape) != 1:
        raise ValueError(f"from_torch: {name!r} (nn.LayerNorm) has normalized_shape="
                         f"{tuple(m.normalized_shape)}; rnncore normalises the last axis only (expected "
                         "one size)")
    return _build.layer_norm(None if m.weight is None else _np(m.weight),
                             None if m.bias is None else _np(m.bias), m.eps, m.normalized_shape[0], dtype)


def _one_direction_pool(direction: str):
    """``rc.nn.LastStep(bidirectional=True, direction=direction)``: PyTorch's ``h_n[-2]`` ("forward")
    or ``h_n[-1]`` ("backward") of the last bidirectional layer."""
    from rnncore.nn.layers import LastStep

    return LastStep(bidirectional=True, direction=direction)


def _in_width(head) -> int:
    """The features the first layer after the pooling reads (``rc.nn.Linear`` or ``rc.nn.LayerNorm``)."""
    if hasattr(head, "normalized_shape"):
        return int(head.normalized_shape)
    return int(np.asarray(head.params["weight"]).shape[1])


#: the parts of a concatenation of poolings over time (torch.cat([...], 1) of a packed forward)
_CONCAT_PARTS = ("last", "mean", "max")
#: the parts as a refusal names them
_CONCAT_SHOWN = {"last": "last step (h_n)", "last-output": "output at the last valid step", "mean": "mean",
                 "max": "max", "max-padded": "y.max(1) of the zero-padded output"}


def _concat_name(parts) -> str:
    """The probe's name of a concatenation: ``"cat(mean,max)"``, ``"cat(last-output,max,mean)"``."""
    return f"cat({','.join(parts)})"


def _concat_candidates(width: int, bidir: bool, heads: list) -> list:
    """The concatenations of poolings the probe of a ``forward(x, lengths)`` tries, as tuples of part
    names: every ordered choice of 2 or 3 distinct parts of the last step, the mean and the maximum
    over the valid steps (Kaggle's ``torch.cat([mean, max], 1)``, fastai's ``masked_concat_pool``
    ``[last, max, mean]``, ``torch.cat([h_n[-2], h_n[-1], mean], 1)``). After a bidirectional layer
    the last step is either ``h_n``'s (``"last"``: the backward half at ``t = 0``) or the output's at
    the last valid step (``"last-output"``). With a head, only those of the width its first
    ``nn.Linear`` reads (``in_features = parts * width``, ``width`` the recurrent output's); without
    one, 2 and 3 parts (the module's output width decides in the match)."""
    import itertools

    if heads:
        n_in = _in_width(heads[0])
        counts = [n_in // width] if n_in % width == 0 and n_in // width in (2, 3) else []
    else:
        counts = [2, 3]
    lasts = ("last", "last-output") if bidir else ("last",)
    out = []
    for k in counts:
        for order in itertools.permutations(_CONCAT_PARTS, k):
            for last in lasts if "last" in order else ("last",):
                out.append(tuple(last if p == "last" else p for p in order))
    return out


def _concat_runs(runs: dict, body: list, heads: list, bidir: bool, concats: dict, x: np.ndarray,
                 lengths: np.ndarray, relu: bool) -> None:
    """Add to ``runs`` the outputs of the concatenations ``concats`` (name -> (parts, {"" / "+softmax" /
    "+log_softmax": model})) on the batch, the recurrent body run once and its poolings shared (a full
    forward per candidate would cost 12 to 22 recurrent runs per batch), then the heads and the softmax /
    log_softmax; and for each one with a maximum, its twin ``"...max-padded..."`` (model None): the
    maximum over ``pad_packed_sequence``'s zero padding instead, ``max(valid maximum, 0)`` for a short
    sequence (refused by name when it is the one that matches), except after a ReLU RNN (``relu``), whose
    outputs are >= 0: there the two maxima are one function."""
    y = _build.sequential(body).forward(x, lengths=lengths)
    y = y[0] if isinstance(y, tuple) else y           # (B, T, F), zero past the lengths
    pooled = {"last": _build.pool("last", bidir).forward(y, lengths),
              "last-output": _build.pool("last", False).forward(y, lengths),
              "mean": _build.pool("mean").forward(y, lengths),
              "max": _build.pool("max").forward(y, lengths),
              "max-padded": y.max(axis=1)}
    for name, (parts, models) in concats.items():
        twins = [(name, models, parts)]
        if "max" in parts and not relu:
            padded = tuple("max-padded" if p == "max" else p for p in parts)
            twins.append((_concat_name(padded), {}, padded))
        for n, ms, ps in twins:
            z = np.concatenate([pooled[p] for p in ps], axis=-1)     # (B, parts * F)
            try:
                for h in heads:
                    z = h.forward(z)
            except ValueError:   # a head of another width: not the module's function
                continue
            runs[n] = (ms.get(""), z)
            for f in _FINAL.values():
                runs[f"{n}+{f}"] = (ms.get(f"+{f}"), _build.activation(f).forward(z))


def _container(module, dtype: str, seed: int, lengths_arg: str | None = None):
    import torch

    named = list(_leaves(module))
    # nn.Softmax / nn.LogSoftmax modules: the probe below tries a (log-)softmax over the features after
    # every interpretation, whether forward calls a module or torch.softmax; over another axis, none matches
    named = [(n, m) for n, m in named if _kind(m) not in _FINAL]
    # a packed forward's nn.LayerNorm before its head (fc(norm(h_n[-1]))): on the pooled features
    converted = [(n, m, _layer_norm_leaf(m, n, dtype) if lengths_arg and _kind(m) == "LayerNorm"
                  else _convert_leaf(m, n, dtype)) for n, m in named]
    converted = [(n, m, c) for n, m, c in converted if c is not None]
    kinds = [_kind(m) for _, m, _ in converted]
    rec_kinds = _RECURRENT | set(_CELLS)
    order = "".join("E" if k == "Embedding" else "R" if k in rec_kinds else "N" if k == "LayerNorm" else "L"
                    for k in kinds)
    if not re.fullmatch(r"E?R+N?L*", order):
        raise ValueError(
            f"from_torch: {type(module).__name__} has leaves {kinds}; the importer handles an optional "
            "Embedding, then recurrent layers, then "
            f"{'an optional LayerNorm and ' if lengths_arg else ''}Linear heads, in that registration order"
        )
    recs = [m for _, m, _ in converted if _kind(m) in rec_kinds]
    layouts = {bool(getattr(r, "batch_first", True)) for r in recs if _kind(r) in _RECURRENT}
    if len(layouts) > 1:
        raise ValueError("from_torch: recurrent layers mix batch_first=True and False")
    # a cell is driven by the module's own loop over time, batch-first (x[:, t]) or time-major
    # (x[t]): the probe below tries both
    layouts = sorted(layouts or {True, False}, reverse=True)
    last = recs[-1]
    bidir = bool(getattr(last, "bidirectional", False))
    body = [c for _, m, c in converted if _kind(m) in rec_kinds or _kind(m) == "Embedding"]
    heads = [c for _, m, c in converted if _kind(m) in ("Linear", "LayerNorm")]

    # a random batch, long enough that the interpretations give different numbers
    g = np.random.default_rng(seed)
    B, T = 3, 5
    p_dtype = next(module.parameters()).dtype
    first = converted[0][1]
    tol = 1e-9 if p_dtype == torch.float64 and dtype == "float64" else 1e-4

    def probe_of(x_in):
        """(the module, the batch) the probe runs: float32 copies of a float16 / bfloat16 module and
        batch (the reference model computes in float32 from the same weights)."""
        if p_dtype in (torch.float16, torch.bfloat16):
            return copy.deepcopy(module).float(), (x_in if x_in.dtype == torch.int64 else x_in.float())
        return module, x_in

    candidates = [("sequence", [])] + [(k, [_build.pool(k, bidir)]) for k in ("last", "mean", "max")]
    if bidir:
        # h_n-style concat of the last step of the forward direction and t=0 of the backward one
        # is LastStep(bidirectional=True); plain last step of the output is LastStep(False)
        candidates.append(("last-output", [_build.pool("last", False)]))
    chains = {name: body + pooling + heads for name, pooling in candidates}
    if bidir and heads and _kind(converted[-len(heads)][1]) == "Linear":
        # Linear(h_n[-1]) / Linear(h_n[-2]): the last layer's backward / forward final state alone,
        # LastStep(bidirectional=True) then the head reading that half (zero weights on the other)
        # (a head of another width fails in forward below and is dropped)
        for name, d in (("backward-final", 1), ("forward-final", 0)):
            chains[name] = body + [_build.pool("last", True), _build.one_direction_linear(heads[0], d),
                                   *heads[1:]]
    elif bidir:
        # h_n[-1] / h_n[-2] returned, or through a LayerNorm (fc(norm(h_n[-1]))): the final state of one
        # direction, LastStep(bidirectional=True, direction=...) (H features)
        for name, d in (("backward-final", "backward"), ("forward-final", "forward")):
            chains[name] = body + [_one_direction_pool(d), *heads]
    # then softmax / log_softmax of the output over its features (a classifier's torch.softmax(fc(h), -1),
    # F.log_softmax(..., dim=-1), nn.Softmax(dim=1) of a (B, C) output): rc.nn.Softmax / LogSoftmax
    for name, chain in list(chains.items()):
        for f in _FINAL.values():
            chains[f"{name}+{f}"] = chain + [_build.activation(f)]
    outputs = {name: _build.sequential(chain) for name, chain in chains.items()}
    # concatenations of poolings (torch.cat([...], 1) of a packed forward, then the heads): rc.nn.ConcatPool,
    # run apart (_concat_runs)
    concats = {}
    if lengths_arg:
        width = (getattr(last, "proj_size", 0) or last.hidden_size) * (2 if bidir else 1)
        for parts in _concat_candidates(width, bidir, heads):
            pools = [_build.pool("last", bidir if p == "last" else False) if p.startswith("last")
                     else _build.pool(p) for p in parts]
            chain = body + [_build.concat_pool(pools)] + heads
            concats[_concat_name(parts)] = (parts, {"": _build.sequential(chain), **{
                f"+{f}": _build.sequential(chain + [_build.activation(f)]) for f in _FINAL.values()}})
    # a forward(x, lengths) runs with lengths < T (sorted, as enforce_sorted=True needs; the
    # longest T, so that pad_packed_sequence gives T steps back)
    lengths = np.array([T, T - 1, 2]) if lengths_arg else None
    # a ReLU RNN's outputs are >= 0: zero padding never exceeds a valid maximum, the two are one
    relu = _kind(recs[-1]) == "RNN" and getattr(recs[-1], "nonlinearity", "tanh") == "relu"
    allowed = None      # after a batch that could not decide: the interpretations still in the running
    for k in range(_PROBE_DRAWS if lengths_arg else 1):
        if _kind(first) == "Embedding":
            x = g.integers(0, first.num_embeddings, (B, T))
            x_in = torch.as_tensor(x)
        else:
            # a redraw (below) larger (1, 1, 2, 2, 4, ...): saturated gates take either sign, so that a
            # layer whose outputs are positive on small inputs also gives negative ones (_max_padded)
            x = (g.standard_normal((B, T, first.input_size)) * 2.0 ** (k // 2)).astype(dtype)
            x_in = torch.as_tensor(x, dtype=p_dtype)
        runs = {}
        for name, model in outputs.items():
            try:
                runs[name] = (model, model.forward(x, lengths=lengths) if lengths_arg else model.forward(x))
            except ValueError:
                # the head does not take this interpretation's width (a Linear on H features after a
                # bidirectional layer's h_n[-1], tried as both directions' 2H): not the module's function
                continue
        # does the batch tell the maximum over the valid steps from the zero-padded one?
        told = not lengths_arg or relu or _max_padded(runs, body, heads, x, lengths, tol)
        if concats:
            _concat_runs(runs, body, heads, bidir, concats, x, lengths, relu)
        # a redraw decides between the interpretations the batch before could not tell apart only (its
        # larger inputs saturate the layer, which can make others agree by chance)
        model = _probe_match(module, probe_of(x_in), runs, layouts, lengths_arg, lengths, T, tol, kinds, told,
                             allowed)
        if not isinstance(model, list):
            return model
        allowed = set(model)    # undecided: another, larger batch
    if all(n.startswith("cat(") and "padded" not in n for n in allowed):
        # concatenations only, whose parts agree on every batch (a one-unit layer's rising output: its
        # maximum is its last valid step)
        raise ValueError(
            f"from_torch: {type(module).__name__}.forward concatenates poolings over time, but on "
            f"{_PROBE_DRAWS} random batches the interpretations {sorted(allowed)} reproduced its output "
            "alike (their parts were equal on every batch, as a maximum and the last step are for a layer "
            "whose outputs rise), so the probe cannot tell which parts it concatenates; build it from its "
            "parts instead: rc.nn.Sequential(from_torch(<the recurrent layer>), rc.nn.ConcatPool(<its "
            "poolings in order: rc.nn.LastStep(), rc.nn.MaskedMean(), rc.nn.MaskedMax()>), "
            "from_torch(<the head>))")
    raise ValueError(
        f"from_torch: {type(module).__name__}.forward takes a maximum over time, but on {_PROBE_DRAWS} "
        f"random batches the interpretations {sorted(allowed)} reproduced its output alike (its recurrent "
        "outputs at the short sequences' steps positive), so the probe cannot tell the maximum over the "
        "valid steps (pad_packed_sequence(..., padding_value=float('-inf'))) from the maximum over zero "
        "padding (max(valid maximum, 0)) or another pooling; build it from its parts instead: "
        "rc.nn.Sequential(from_torch(<the recurrent layer>), rc.nn.MaskedMax(), from_torch(<the head>)) "
        "for the former" + (" (rc.nn.ConcatPool(rc.nn.LastStep(), rc.nn.MaskedMean(), rc.nn.MaskedMax()) "
                            "in its order for a concatenation)"
                            if any(n.startswith("cat(") for n in allowed) else ""))


def _probe_match(module, probe, outputs: dict, layouts: list, lengths_arg, lengths, T: int, tol: float,
                 kinds: list, told: bool, allowed: set | None = None):
    """The interpretation of ``outputs`` (name -> (model, its output on the probe batch)) whose output
    the module's reproduces (``probe``: the module, the batch), or a refusal; or the list of the names
    this batch cannot decide between: a maximum over time it cannot tell from the maximum over zero
    padding (``told`` False), or an interpretation that a maximum also reproduces (with lengths).
    ``allowed``: the only candidates (None: all)."""
    maxima = ("max", "max-padded")
    import torch

    module_, x_in = probe
    linears = [m for _, m in _leaves(module_) if _kind(m) == "Linear"]
    errors = []
    for batch_first in layouts:
        xt = x_in if batch_first else x_in.transpose(0, 1)
        was_training = module.training
        module.eval()
        # the output of every call of the last nn.Linear leaf: the logits that decide between the
        # interpretations of a saturated softmax (_one_softmax_match)
        calls = []
        hook = (linears[-1].register_forward_hook(lambda m, i, o, calls=calls: calls.append(o))
                if linears else None)
        try:
            with torch.no_grad():
                out = module_(xt, torch.as_tensor(lengths)) if lengths_arg else module_(xt)
        except Exception as e:  # noqa: BLE001 - whatever the module's own code raises
            call = f"(x, {lengths_arg}={lengths.tolist()})" if lengths_arg else "(x)"
            errors.append(f"{type(module).__name__}.forward{call} on a random batch x of shape "
                          f"{tuple(xt.shape)} raised {type(e).__name__}: {e}")
            continue
        finally:
            module.train(was_training)
            if hook is not None:
                hook.remove()
        # called more than once (an auxiliary head, a Linear applied twice): its output is no logits
        logits = _np(calls[0]).astype(np.float64) if len(calls) == 1 and hasattr(calls[0], "detach") else None
        if isinstance(out, tuple | list):
            out = out[0]
        if not hasattr(out, "detach"):
            raise ValueError(
                f"from_torch: {type(module).__name__}.forward returned {type(out).__name__}, not a tensor")
        out = _np(out).astype(np.float64)

        def ref_of(name: str, a=None, out=out, batch_first=batch_first) -> np.ndarray:
            """The module's output (or ``a``, an array in its layout) in interpretation ``name``'s."""
            a = out if a is None else a
            if name.startswith("sequence") and a.ndim == 2 and T > 1 and \
                    a.shape[0] == T * x_in.shape[0]:
                # decoded.view(-1, ntoken) (the word_language_model): the steps' rows in the module's order
                a = a.reshape((-1, T) + a.shape[1:]) if batch_first else a.reshape((T, -1) + a.shape[1:])
            seq = not batch_first and name.startswith("sequence") and a.ndim == 3
            return a.transpose(1, 0, 2) if seq else a

        def agrees(name: str, ref_of=ref_of) -> bool:
            y = outputs[name][1]
            return _matches(y[0] if isinstance(y, tuple) else y, ref_of(name), tol)

        for name, (model, y) in outputs.items():
            if allowed is not None and name not in allowed:
                continue
            if isinstance(y, tuple):
                y = y[0]
            ref = ref_of(name)
            if _matches(y, ref, tol):
                base, suffix = name.split("+")[0], name[len(name.split("+")[0]):]
                if base in maxima and not told:
                    return [f"{b}{suffix}" for b in maxima if f"{b}{suffix}" in outputs]
                # with lengths, a zero-padded maximum can reproduce the last step (a monotone sequence)
                # on a batch: decide on another
                rivals = [f"{b}{suffix}" for b in maxima if lengths_arg and base not in maxima
                          and f"{b}{suffix}" in outputs and (allowed is None or f"{b}{suffix}" in allowed)
                          and agrees(f"{b}{suffix}")]
                if lengths_arg and base.startswith("cat("):
                    # another concatenation that this batch cannot tell from it (the maximum and the last
                    # step of a one-unit layer, the maximum over the valid steps and over zero padding):
                    # decide on another batch; a saturated softmax's (other logits) is decided below
                    rivals += [o for o in outputs if o != name and o.startswith("cat(") and
                               o[len(o.split("+")[0]):] == suffix and (allowed is None or o in allowed)
                               and agrees(o) and (suffix != "+softmax" or _matches(
                                   outputs[o.split("+")[0]][1], outputs[base][1], tol))]
                if rivals:
                    return [name] + rivals
                if model is None and base.startswith("cat("):   # its maximum over zero padding (_concat_runs)
                    shown = ", ".join(_CONCAT_SHOWN[p] for p in base[4:-1].split(","))
                    raise ValueError(
                        f"from_torch: {type(module).__name__}.forward concatenates poolings over time, "
                        f"torch.cat([{shown}], 1), whose maximum is over a padded "
                        "batch whose padded steps are zeros (pad_packed_sequence's default "
                        "padding_value=0.0): "
                        "max(valid maximum, 0) for the sequences shorter than the batch, which rnncore's "
                        "maximum over the valid steps (rc.nn.MaskedMax in rc.nn.ConcatPool) is not; take the "
                        "maximum of a batch padded with padding_value=float('-inf') (or masked_fill(~mask, "
                        "float('-inf'))) to import it")
                if model is None:   # the maximum over pad_packed_sequence's zeros (_max_padded)
                    raise ValueError(
                        f"from_torch: {type(module).__name__}.forward takes the maximum over time of a "
                        "padded batch whose padded steps are zeros (pad_packed_sequence's default "
                        "padding_value=0.0): max(valid maximum, 0) for the sequences shorter than the batch, "
                        "which rnncore's maximum over the valid steps (rc.nn.MaskedMax) is not; pad with "
                        "padding_value=float('-inf') (then the maximum is over the valid steps) to import it")
                if name.endswith("+softmax"):
                    model = outputs[_one_softmax_match(name, outputs, ref_of, tol, module, logits)][0]
                    if logits is not None:
                        args = (xt, torch.as_tensor(lengths)) if lengths_arg else (xt,)
                        _softmax_reads_logits(module, module_, args, linears[-1], logits, tol)
                return model
            if lengths_arg and name.startswith("sequence") and y.shape == ref.shape:
                valid = (np.arange(T)[None, :] < lengths[:, None])[..., None]
                if _matches(y * valid, ref * valid, tol):
                    raise ValueError(
                        f"from_torch: {type(module).__name__}.forward's output past each sequence's "
                        f"length is not zero (a layer after pad_packed_sequence, e.g. a Linear's bias, "
                        f"writes there), where rnncore's model with lengths= writes zeros; the valid steps "
                        f"match: expected zeros past the lengths, received up to "
                        f"{float(np.abs(ref * ~valid).max()):.3g} (zero the output past the lengths in "
                        f"forward to import it)")
    if len(errors) == len(layouts):
        raise ValueError(f"from_torch: {errors[0]}")
    raise ValueError(
        f"from_torch: could not tell how {type(module).__name__}.forward combines {kinds}: none of "
        "'head on every step', 'last valid step', 'mean over time' or 'maximum over time'"
        f"{', 2 or 3 of them concatenated (torch.cat)' if lengths_arg else ''} (each also "
        "followed by a softmax / "
        "log_softmax over the features) reproduces its output; build the "
        "rnncore model with rc.nn.Sequential and load the converted weights instead"
    )


def from_torch(module_or_state_dict, *, mode: str | None = None, nonlinearity: str = "tanh",
               dtype: str = "float64", seed: int = 0, as_spec: bool = False) -> Module | ModelSpec:
    """Convert a PyTorch model into an rnncore reference model.

    Parameters
    ----------
    module_or_state_dict : ``nn.RNN``/``nn.GRU``/``nn.LSTM``, an ``nn.Linear`` /
        ``nn.Embedding``, an ``nn.RNNCell/GRUCell/LSTMCell`` (imported as the one-layer
        network that applies it at every step), a container module of those (see the module docstring), or the
        ``state_dict`` of one recurrent module (tensors or arrays)
    mode : for a state dict, "RNN", "GRU" or "LSTM" (inferred from the shapes when None)
    nonlinearity : for a state dict of an ``nn.RNN``: "tanh" (default) or "relu" — the
        weights do not say which
    dtype : "float64" or "float32", the dtype of the reference model
    seed : seed of the random batch used to identify a container's pooling
    as_spec : return the model's :class:`~rnncore.spec.ModelSpec` (the description the C core,
        the references and the ``.rnc`` writer read) instead of the ``rc.nn`` model; a model
        the C core cannot run is refused (ValueError naming the module)

    Returns
    -------
    ``rc.nn.RNN/GRU/LSTM`` (forward ``x (B, T, I) -> (y, h_n)``), ``rc.nn.Linear``,
    ``rc.nn.Embedding`` or ``rc.nn.Sequential`` (embedding, recurrent layers, optional
    pooling, heads; with front-end layers: the chain of the module's ``forward``, with a
    ``torch_layout`` attribute ``(input axes, output axes)`` of the module, e.g.
    ``("BFT", "BTF")``). Inputs are always batch-major ``(B, T, F)``.
    """
    if isinstance(module_or_state_dict, Mapping):
        model = _recurrent_from_state_dict(module_or_state_dict, mode, nonlinearity, dtype)
        return _build.as_spec(model, as_spec)
    try:
        import torch
    except ImportError as e:  # pragma: no cover
        raise ImportError("from_torch needs PyTorch for a module; pass its state_dict() otherwise") from e
    m = module_or_state_dict
    if not isinstance(m, torch.nn.Module):
        raise TypeError(f"from_torch: expected a torch.nn.Module or a state dict, got {type(m).__name__}")
    if isinstance(m, torch.jit.ScriptModule):
        raise ValueError(
            f"from_torch: module {getattr(m, 'original_name', '?')!r} is a TorchScript module "
            f"({type(m).__name__}); expected the torch.nn.Module itself (the module before "
            "torch.jit.script / torch.jit.trace), or its state_dict(), or an ONNX export of it")
    if not list(m.children()) or torch.nn.utils.parametrize.is_parametrized(m):
        layer = _convert_leaf(m, _kind(m), dtype)
        if layer is None:
            raise ValueError(f"from_torch: {_kind(m)} has nothing to import")
        return _build.as_spec(layer, as_spec)
    from rnncore.io.torch_fx import from_torch_fx, needs_fx

    state_arg = _forward_state_argument(m)
    if state_arg is not None:
        try:
            model = from_torch(_with_zero_state(m, state_arg), dtype=dtype, seed=seed)
        except ValueError as e:
            raise ValueError(f"{e} (run as {type(m).__name__}.forward(x, {state_arg}=None): a zero initial "
                             "state)") from None
        model.torch_zero_state = state_arg
        return _build.as_spec(model, as_spec)
    lengths_arg = _forward_lengths_argument(m)
    if needs_fx(m) and lengths_arg is None:
        return _build.as_spec(from_torch_fx(m, dtype, seed), as_spec)
    try:
        model = _container(m, dtype, seed, lengths_arg)
    except ValueError as e:
        # e.g. torch.softmax(...), a residual or a Linear before the RNN: read forward's chain with torch.fx
        try:
            model = from_torch_fx(m, dtype, seed)
        except Exception as fx_error:  # noqa: BLE001 - the trace's own errors (TraceError, ...) too
            raise ValueError(f"{e}; read with torch.fx: {fx_error}") from None
    return _build.as_spec(model, as_spec)
