"""Compiled inference on the C core: ``rc.compile``, ``rc.save``, ``rc.load``, ``rc.isa``.

An :class:`Engine` holds one model as ``.rnc`` bytes (the file format of
``docs/rnc-format.md``) and the C core's view of those bytes; what runs here runs unchanged
from the same file on a board. Streams carry state between calls::

    engine = rc.compile(model, precision="q8", calibration=X)
    stream = engine.stream(batch=1)
    y = stream.step(x)            # x (1, input_size) -> y (1, output_size)
    saved = stream.state          # h (L*D, B, H) -- LSTM: (h, c) -- a copy
    stream.state = saved          # restore
    Y = engine.run(X, lengths)    # whole sequences, bidirectional layers allowed

``rc.isa()`` says which instruction-set paths this CPU offers and which one is used;
``rc.set_isa(name)`` (or the environment variable ``RNNCORE_ISA`` before import) forces one.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

import numpy as np

from rnncore.io.files import MAX_MODEL_BYTES, read_file
from rnncore.spec import PRECISIONS, ModelSpec, build_rnc, spec_from_rnc  # noqa: F401 (PRECISIONS: API)

try:
    from rnncore import _engine
except ImportError as e:  # pragma: no cover - only without a built extension
    _engine = None
    _IMPORT_ERROR = e

_MAX_BATCH = 1 << 24  # the C core's limit (csrc/src/model.c MAX_BATCH)
_MEAN_MAX_STEPS = 1 << 24  # the most steps a mean pooling counts (csrc/src/model.c MEAN_MAX_STEPS)
_ENGINES: weakref.WeakSet = weakref.WeakSet()
_FORCED_ISA: list[str | None] = [None]


def _ext():
    if _engine is None:  # pragma: no cover
        raise ImportError(_import_error_message(_IMPORT_ERROR)) from _IMPORT_ERROR
    return _engine


def _import_error_message(e: ImportError) -> str:
    """Why ``rnncore._engine`` cannot be used: not built at all, or built but failing to load."""
    if isinstance(e, ModuleNotFoundError) and e.name == "rnncore._engine":
        return (f"rnncore's C extension is not built ({e}); build it with `pip install -e .` "
                "(or `python setup.py build_ext --inplace` in a source tree)")
    return (f"rnncore's C extension is present but fails to load ({e}): a broken or stale build, "
            "not a missing one; rebuild it from a clean tree (`python setup.py build_ext --inplace "
            "--force`, or reinstall the wheel) and report the error if it persists")


# ----------------------------------------------------------------------------------------------
# ISA selection


def isa() -> dict[str, Any]:
    """The instruction-set paths of the C core on this machine.

    Returns
    -------
    dict with ``available`` (paths this build has and this CPU runs), ``compiled`` (paths in
    this build), ``missing`` (compiled paths this CPU lacks), ``best``, and ``in_use``: the path
    new engines use (``rc.set_isa``, else ``RNNCORE_ISA``, else ``best``).
    """
    ext = _ext()
    table = ext.isa_table()
    try:
        in_use = _FORCED_ISA[0] or ext.isa_default()
    except ValueError:
        avail = [t["name"] for t in table if t["available"]]
        raise ValueError(f"RNNCORE_ISA={os.environ.get('RNNCORE_ISA')!r} is not a path this machine/build "
                         f"runs (available: {avail}); unset it or name one of those") from None
    return {
        "available": [t["name"] for t in table if t["available"]],
        "compiled": [t["name"] for t in table if t["compiled"]],
        "missing": [t["name"] for t in table if t["compiled"] and not t["cpu_supported"]],
        "best": ext.isa_best(),
        "in_use": in_use,
    }


def set_isa(name: str | None) -> None:
    """Force the ISA path ``name`` ("generic", "avx2", ...) for every engine, present and future;
    ``None`` or ``"auto"`` returns to ``RNNCORE_ISA`` / the best path.

    Not thread-safe against steps running in other threads at the same moment.
    Raises ``ValueError`` for an unknown path or one this CPU/build cannot run.
    """
    ext = _ext()
    if name is None or name == "auto":
        _FORCED_ISA[0] = None
    else:
        if not isinstance(name, str):
            raise TypeError(f"isa: expected a string, got {type(name).__name__}")
        ext.isa_from_name(name)  # raises for unknown names
        avail = isa()["available"]
        if name not in avail:
            raise ValueError(f"isa: {name!r} is not available on this machine/build (available: {avail})")
        _FORCED_ISA[0] = name
    for eng in list(_ENGINES):
        eng.set_isa(_FORCED_ISA[0] or "auto")


# ----------------------------------------------------------------------------------------------
# engine


class Engine:
    """A model compiled for the C core (see the module docstring).

    Parameters
    ----------
    data : the ``.rnc`` bytes
    spec : the float model the bytes were written from, if known (for reference checks)
    """

    def __init__(self, data: bytes, spec: ModelSpec | None = None) -> None:
        ext = _ext()
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data: expected the .rnc bytes, got {type(data).__name__}")
        self.data = bytes(data)
        self.spec = spec
        self._model = ext.Model(self.data)
        #: for an engine compiled from an ``OnnxGraph``: the graph's data / state tensor names and the
        #: data's axes (``input_layout`` ``"TBF"`` means pass ``x.transpose(1, 0, 2)``), else None
        self.graph_io: dict | None = None
        if _FORCED_ISA[0] is not None:
            self._model.set_isa(_FORCED_ISA[0])
        _ENGINES.add(self)

    # -- description ------------------------------------------------------------------------
    @property
    def precision(self) -> str:
        return self._model.precision

    @property
    def input_size(self) -> int:
        """Features per step (1 for a token-id model)."""
        return self._model.input_size

    @property
    def output_size(self) -> int:
        return self._model.output_size

    @property
    def uses_ids(self) -> bool:
        """True when the model starts with an embedding and takes integer token ids."""
        return self._model.uses_ids

    @property
    def bidirectional(self) -> bool:
        return self._model.bidirectional

    @property
    def layers(self) -> list[dict]:
        return self._model.layers

    @property
    def nbytes(self) -> int:
        """Size of the model (the ``.rnc`` file) in bytes."""
        return len(self.data)

    def state_bytes(self, batch: int = 1) -> int:
        """Bytes of working memory one stream of ``batch`` rows needs in C."""
        if not isinstance(batch, int | np.integer) or isinstance(batch, bool) or not 1 <= batch <= _MAX_BATCH:
            raise ValueError(f"batch: expected an integer in [1, {_MAX_BATCH}], got {batch!r}")
        return self._model.state_bytes(int(batch))

    def run_scratch_bytes(self, batch: int = 1, steps: int = 1) -> int:
        """Bytes of scratch :meth:`run` allocates for ``batch`` sequences of ``steps`` steps (on top
        of :meth:`state_bytes`; from C, ``rnc_run_scratch_size``)."""
        for name, v in (("batch", batch), ("steps", steps)):
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if batch > _MAX_BATCH:
            raise ValueError(f"batch: expected an integer in [1, {_MAX_BATCH}], got {batch!r}")
        return self._model.run_scratch_bytes(int(batch), int(steps))

    @property
    def isa(self) -> str:
        """The ISA path this engine's kernels use."""
        return self._model.isa

    def set_isa(self, name: str) -> None:
        """Use ISA path ``name`` for this engine ("auto": RNNCORE_ISA or the best)."""
        self._model.set_isa(name)

    def __reduce__(self):
        # pickle / copy.deepcopy / multiprocessing: the .rnc bytes (and the float spec) are the model
        return (Engine, (self.data, self.spec))

    def describe(self) -> str:
        """The stack in one line, e.g. ``gru(64) > last_step > linear(64->9)`` (``x2``: bidirectional)."""
        m = self._model
        front, post, pooled = _step_record_kinds(self.data)
        dim = _embedding_dim(self.data) if front and m.uses_ids else self.layers[0]["input_size"]
        parts = [f"embedding({m.embed_num}x{dim})"] if m.uses_ids else []
        parts += front
        for layer, mid in zip(self.layers, post, strict=True):   # post: the records after each layer
            parts.append(f"{layer['kind']}{'x2' if layer['directions'] == 2 else ''}({layer['hidden_size']})")
            parts += mid
        post = [k for mid in post for k in mid]
        if m.last_step and (m.last_step_last or (m.last_step_mean and m.last_step_max)):
            parts.append("concat_pool(" + "|".join(k for k, on in (("last", m.last_step_last),
                                                                   ("mean", m.last_step_mean),
                                                                   ("max", m.last_step_max)) if on) + ")")
        elif m.last_step:
            parts.append("attention" if m.last_step_attention else "masked_mean" if m.last_step_mean
                         else "masked_max" if m.last_step_max else "last_step")
        parts += pooled
        if m.has_head:
            last = self.layers[-1]
            width = last["state_size"] * last["directions"]
            if m.last_step and (m.last_step_mean or m.last_step_max):   # [last | mean | max] present
                width *= int(m.last_step_last) + int(m.last_step_mean) + int(m.last_step_max)
            if "frame_conv" in post + pooled:   # a per-step Linear changed the width: the file's head
                from rnncore.io.rnc import read_rnc

                width = int(np.shape(read_rnc(self.data)["head"]["weight"])[1])
            parts.append(f"linear({width}->{self.output_size})")
        return " > ".join(parts)

    def __repr__(self) -> str:
        return (f"Engine({self.describe()}, precision={self.precision!r}, in={self.input_size}, "
                f"out={self.output_size}, bytes={self.nbytes}, isa={self.isa!r})")

    # -- running ------------------------------------------------------------------------------
    def stream(self, batch: int = 1) -> Stream:
        """A new stateful stream of ``batch`` rows (state zero). Unidirectional models only."""
        if not isinstance(batch, int | np.integer) or batch < 1:
            raise ValueError(f"batch: expected a positive integer, got {batch!r}")
        if batch > _MAX_BATCH:
            raise ValueError(f"batch: at most {_MAX_BATCH} (2**24) streams, got {batch}")
        front = _step_record_kinds(self.data)[0]
        if "instance_norm" in front:
            raise ValueError(f"stream: per-step record {front.index('instance_norm')} of the front-end is an "
                             "instance_norm (InstanceNorm1d), which normalises each channel over the whole "
                             "sequence; use engine.run(X)")
        if self.bidirectional:
            raise ValueError("stream: the model has a bidirectional layer, which needs whole "
                             "sequences; use engine.run(X)")
        if self._model.reverse:
            raise ValueError("stream: the model has a reverse layer (it reads each sequence from its "
                             "end), which needs whole sequences; use engine.run(X)")
        return Stream(self, int(batch))

    def run(self, X: np.ndarray, lengths=None, state=None, return_state: bool = False, *, mask=None):
        """Whole sequences.

        Parameters
        ----------
        X : (B, T, input_size) floats, or (B, T) integer token ids. Every value within the lengths
            must be finite (NaN/Inf there is a ValueError); padding past a length may be anything
        lengths : (B,) ints in [0, T] (None: all T); outputs past a length are zero; a length of 0
            keeps that sequence's state (with last-step, mean or max pooling it pools zeros: head(0))
        state : initial state as ``Stream.state`` gives it (None: zeros)
        return_state : also return the final state
        mask : (B, T) bool prefix mask, instead of ``lengths`` (keyword only)

        Returns
        -------
        Y : (B, T_out, output_size) float32, or (B, output_size) with last-step pooling (``LastStep``:
            each sequence's last valid step; ``MaskedMean``: the mean over its valid steps, and
            ``Stream.step`` the mean over the stream's steps since its reset; ``MaskedMax``: the
            maximum over its valid steps, feature by feature, and ``Stream.step`` over the stream's
            steps since its reset). T_out = T
            unless the model has a strided layer over time (a Conv1d with stride s: ceil(T / s)
            from a reset state; a pooling of kernel k, stride s: floor((T - k) / s) + 1, or 0 when
            T < k, as PyTorch); with ``lengths``, sequence b's outputs are those of its first
            ``lengths[b]`` steps, zeros after them
        state : (if ``return_state``) the final state

        Raises
        ------
        FloatingPointError
            when a ReLU RNN state or a linear head's output overflows float32 (NaN/Inf), naming
            the layer, sequence and step (``docs/c-api.md``, "Non-finite values"); ``Stream.step``
            and ``Stream.run`` raise it too, and then refuse the stream's state until ``reset()``
            or a finite ``state`` is assigned

        Notes
        -----
        Memory: besides ``Y``, a run allocates a scratch of a few hundred KB to a few MB whatever
        T is (the C core walks the time axis in chunks of steps, docs/c-api.md), plus, for a
        stack, the sequences between layers (B x T x the layers' output widths). ``X`` is used
        in place when it is C-contiguous float32 (ids: int32); any other dtype or layout is
        first copied into one.
        """
        X = _as_numpy(X)
        arr = np.asarray(X)
        if arr.ndim < 2:
            raise ValueError("X: expected (batch, time, features) or (batch, time) ids, "
                             f"got shape {arr.shape}")
        if arr.shape[0] == 0:
            raise ValueError(f"X: empty batch (shape {arr.shape}); give at least one sequence")
        if arr.shape[0] > _MAX_BATCH:
            raise ValueError(f"X: at most {_MAX_BATCH} (2**24) sequences per call, got {arr.shape[0]}")
        s = Stream(self, int(arr.shape[0]), allow_bidirectional=True)
        if state is not None:
            s.state = state
        y = s.run(X, lengths, mask=mask)
        return (y, s.state) if return_state else y

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "wb") as f:
            f.write(self.data)

    def reference(self):
        """The NumPy model the C core must agree with, from this engine's bytes: the
        :class:`~rnncore.quant.QModel` of the stored integer weights (q8, q4), the
        :class:`~rnncore.quant.integer.IntModel` (int8: ``int_forward(ref, X)`` gives ``run(X)``'s
        values bit for bit), or the float spec (f32)."""
        from rnncore.io.rnc import read_rnc
        from rnncore.quant.reference import qmodel_from_rnc

        d = read_rnc(self.data)
        if d["precision"] == "int8":   # rnncore.quant.integer.int_forward(ref, X) is what run gives
            return d["int_model"]
        return qmodel_from_rnc(d) if d["precision"] != "f32" else spec_from_rnc(d)


class Stream:
    """A batch of streams with explicit state. ``step``, ``reset``, ``state``, ``run``.

    ``step(x, out=buf)`` with a float32 C-contiguous ``x`` of shape ``(batch, input_size)`` and a
    float32 ``buf`` of shape ``(batch, output_size)`` allocates nothing; ``step`` is the C
    binding's method itself (no Python wrapper in between).
    """

    def __init__(self, engine: Engine, batch: int, allow_bidirectional: bool = False) -> None:
        if (engine.bidirectional or engine._model.reverse) and not allow_bidirectional:
            raise ValueError("stream: bidirectional and reverse models run whole sequences only (engine.run)")
        self.engine = engine
        self._s = engine._model.stream(batch)
        self.batch = batch
        self.step = self._s.step  # bound C method: no Python frame per step (None: no output)
        self.reset = self._s.reset
        self.out_steps = self._s.out_steps
        self.time_step = self._s.time_step
        self.flush = self._s.flush  # end of input: the outputs still owed, (batch, n, ...)

    def __repr__(self) -> str:
        e = self.engine
        return (f"Stream(batch={self.batch}, in={self.input_shape}, out={self.output_shape}, "
                f"precision={e.precision!r}, isa={e.isa!r})")

    def run(self, X, lengths=None, *, mask=None) -> np.ndarray:
        """Whole sequences continuing from this stream's state (left at the final state);
        ``lengths`` (B,) or a (B, T) boolean prefix ``mask`` as in :meth:`Engine.run`.

        A causal model (``lookahead == 0`` and nothing to :meth:`flush`) continues its layers over
        time across calls: ``run`` in chunks gives the bits of one ``run``. A model with padding at
        the end of the input (PyTorch ``Conv1d(padding=p)``, Keras ``padding="same"``, ...) takes
        each call's ``X`` as whole sequences, as PyTorch and ONNX Runtime do: every sequence with
        ``lengths[b] > 0`` gets its right padding after its last step and its layers over time
        start afresh, so chunks are padded at both ends (``run(X[:, :n])`` then ``run(X[:, n:])``
        is not ``run(X)``; h and c carry over). For one long input in pieces use :meth:`step` and
        one :meth:`flush` at its end. ``run`` on such a model raises ``ValueError`` while a
        sequence it would run is open: steps were taken (or a mid-sequence state assigned) and
        not yet ended by :meth:`flush` or :meth:`reset`."""
        X = _as_numpy(X)
        if mask is not None:
            lengths = _lengths_from_mask(_as_numpy(mask), lengths, self.batch, np.shape(X))
        lengths = _as_numpy(lengths)
        if self._s.flush_steps:
            self._check_sequence_start(X, lengths)
        return self._s.run(X, lengths)

    def _check_sequence_start(self, X, lengths) -> None:
        """``run`` of a model with right padding: every row it runs at the start of a sequence."""
        shapes = _conv_windows(self.engine.data)
        if not shapes:
            return
        fresh = _fresh_windows(shapes, self.batch).reshape(self.batch, -1)
        raw = self._s.raw_window().reshape(self.batch, -1)[:, :fresh.shape[1]]   # not the mean's sums
        open_rows = np.flatnonzero((raw != fresh).any(axis=1))
        if open_rows.size and np.ndim(X) >= 2:
            steps = np.shape(X)[1]
            if lengths is not None and np.shape(lengths) == (self.batch,):
                open_rows = [b for b in open_rows if lengths[b] > 0]
            elif steps == 0:
                open_rows = []
        if len(open_rows):
            raise ValueError(
                f"run: stream row(s) {[int(b) for b in open_rows]} are in the middle of a sequence (steps "
                "were taken and not yet ended by flush()), and this model pads the end of each sequence "
                f"(flush_steps={self._s.flush_steps}): run takes X as whole new sequences. Call "
                "flush() to end the open sequence (its last outputs) or reset() to drop it, or go on "
                "with step()")

    def __reduce__(self):
        # pickle / copy.deepcopy: the engine, the batch and a copy of the state
        return (_restore_stream, (self.engine, self.batch, self.state))

    @property
    def lookahead(self) -> int:
        """Input steps an output waits for: the future inputs the model's padded layers over time
        read (``P - left`` of each, times the strides before it; ``rnc_model_info.lookahead``),
        0 for a causal model. The output for input step t comes ``lookahead`` steps later and the
        last ones from :meth:`flush` (docs/c-api.md, "Look-ahead")."""
        return self._s.lookahead

    @property
    def flush_steps(self) -> int:
        """The most output steps :meth:`flush` gives (the sum of the padded layers' right
        padding; ``rnc_model_info.flush_steps``), 0 for a model without padding at the end."""
        return self._s.flush_steps

    @property
    def input_shape(self) -> tuple:
        return self._s.input_shape

    @property
    def output_shape(self) -> tuple:
        return self._s.output_shape

    # -- state ----------------------------------------------------------------------------------
    @property
    def int_state(self) -> list[tuple[np.ndarray, ...]]:
        """A fully-integer (``"int8"``) model's state as the integers it stands for, one tuple per
        layer as :mod:`rnncore.quant.integer` holds it: LSTM ``(h8, c16)``, GRU ``(h8, h16)``, RNN
        ``(h8,)``, each ``(batch, H)`` int8 / int16 (``state`` gives the same as floats, exactly:
        docs/c-api.md, "Fully-integer models")."""
        from rnncore.quant import fixedpoint as fx
        from rnncore.quant import integer as qi

        if self.engine.precision != "int8":
            raise ValueError("int_state: expected a fully-integer (int8) model, this one is "
                             f"{self.engine.precision}")
        if not hasattr(self.engine, "_int_model"):
            self.engine._int_model = self.engine.reference()
        h, c = self._s.raw_state()
        b, out = self.batch, []
        for layer, cell in zip(self.engine.layers, self.engine._int_model.layers, strict=True):
            n = b * layer["hidden_size"]
            hb = h[layer["h_offset"] * b:layer["h_offset"] * b + n].reshape(b, -1).astype(np.float64)
            if cell.cell == "gru":
                h16 = np.rint(hb * 2.0 ** 15).astype(np.int64)
                out.append((fx.sat8(fx.mbqm(h16, cell.m_h, cell.e_h) + cell.h_zp).astype(np.int8),
                            h16.astype(np.int16)))
                continue
            h8 = qi.quantize_s8(hb, cell.h_scale, cell.h_zp)
            if cell.cell == "lstm":
                cb = c[layer["c_offset"] * b:layer["c_offset"] * b + n].reshape(b, -1).astype(np.float64)
                out.append((h8, np.rint(cb * 2.0 ** -cell.cell_shift).astype(np.int16)))
            else:
                out.append((h8,))
        return out

    def _layout(self):
        layers = self.engine.layers
        hs = {(layer["hidden_size"], layer["state_size"]) for layer in layers}
        kinds = {layer["kind"] == "lstm" for layer in layers}
        return layers, (len(hs) == 1 and len(kinds) == 1)

    @property
    def state(self):
        """A copy of the state.

        For a stack of equal-size layers: ``h (L*D, B, H)`` float32, PyTorch's ``h_n`` order
        ``[l0 fwd, l0 bwd, l1 fwd, ...]``; LSTM stacks give the pair ``(h, c)``. Otherwise a list
        with one entry per (layer, direction): ``h (B, H)`` or, for LSTM layers, ``(h, c)``.
        Assigning either form (same shapes, floating dtype, finite) restores it.

        A model with a Conv1d or a pooling over time (conv_time, pool_time records) also keeps
        each one's last ``P = dilation*(kernel_size-1)`` inputs: its state is the dict
        ``{"recurrent": <the form above>, "windows": [(B, P, C_in) per such layer, oldest step
        first]}``, and when one of them is strided (a Conv1d with stride > 1, a pooling) the key
        ``"countdowns"``: ``(B, n)`` int64, per strided layer in order the steps it still takes
        before its next output; with padding at the end of the input, ``"real_steps"``: ``(B, n)``
        int64, per padded pooling and per Conv1d padded beyond its reach (``left + right >
        dilation*(kernel_size-1)``) the real input steps it has taken in this sequence (up to that
        reach; 0: :meth:`flush` gives it no pad steps). Assigning that dict restores all, assigning
        the recurrent form alone starts the windows and countdowns afresh (the start of a sequence,
        as ``reset()``).

        A model with mean pooling (``rc.nn.MaskedMean``: ``step`` gives the mean of the steps since
        the reset) keeps its running sum and count: the dict (with ``"windows"`` etc. only when the
        model has those) holds ``"mean_sum"`` ``(B, F)`` float32, the sum of the pooled features
        over the steps taken, and ``"mean_steps"`` ``(B,)`` int64, their number (at most 2**24).

        A model with max pooling (``rc.nn.MaskedMax``: ``step`` gives the maximum over the steps
        since the reset) keeps its running maxima: ``"max_value"`` ``(B, F)`` float32, the maximum of
        each pooled feature over the steps taken, and ``"max_seen"`` ``(B,)`` bool, whether a step
        was taken (before the first, the pooling gives zeros and ``"max_value"`` is not used).

        A model with both (``rc.nn.ConcatPool`` of ``MaskedMean`` and ``MaskedMax``, with or without
        ``LastStep``) keeps both, the four keys (the last step is the step itself: no state).

        A model with attention pooling (``rc.nn.AttentionPool``: ``step`` gives the attention over
        the steps since the reset, docs/equations.md "Attention pooling") keeps its online softmax:
        ``"attn_acc"`` ``(B, F)`` float32, the sum of ``exp(e_t - m) x_t`` over the steps taken,
        ``"attn_max"`` ``(B,)`` float32, ``m`` (the largest score), and ``"attn_sum"`` ``(B,)``
        float32, the sum of ``exp(e_t - m)`` (0 before the first step, else at least 1).
        """
        rec = self._recurrent_state()
        shapes = _conv_windows(self.engine.data)
        mean = self.engine._model.last_step_mean or self.engine._model.last_step_max
        attn = self.engine._model.last_step_attention
        if not shapes and not mean and not attn:
            return rec
        flat = self._s.raw_window().reshape(self.batch, -1)
        if not shapes:
            return {"recurrent": rec, **self._pool_state(flat, 0)}
        wins, counts, reals, o = [], [], [], 0
        for p, ch, start, padded in shapes:
            wins.append(flat[:, o:o + p * ch].reshape(self.batch, p, ch).copy())
            o += p * ch
            if start is not None:
                counts.append(flat[:, o].astype(np.int64))
                o += 1
            if padded:   # the real steps taken (the pad steps' counter is 0 between calls)
                reals.append(flat[:, o].astype(np.int64))
                o += 2
        out = {"recurrent": rec, "windows": wins}
        if counts:
            out["countdowns"] = np.stack(counts, axis=1)
        if reals:
            out["real_steps"] = np.stack(reals, axis=1)
        out.update(self._pool_state(flat, o))
        return out

    def _pool_state(self, flat: np.ndarray, o: int) -> dict:
        """The pooling's part of the state from ``rnc_state.win`` rows ``flat`` ``(B, n)``, after the
        windows (from column ``o``): the mean's sums then count, the max's maxima then seen flag, or
        attention's acc, max, sum."""
        mean, maxp = self.engine._model.last_step_mean, self.engine._model.last_step_max
        if mean or maxp:   # [sums, count] then [maxima, seen] of those present, each F + 1 floats
            width = (flat.shape[1] - o) // (int(mean) + int(maxp)) - 1
            out = {}
            if mean:
                out.update(mean_sum=flat[:, o:o + width].copy(),
                           mean_steps=flat[:, o + width].astype(np.int64))
                o += width + 1
            if maxp:
                out.update(max_value=flat[:, o:o + width].copy(), max_seen=flat[:, o + width] != 0)
            return out
        if self.engine._model.last_step_attention:
            return {"attn_acc": flat[:, o:-2].copy(), "attn_max": flat[:, -2].copy(),
                    "attn_sum": flat[:, -1].copy()}
        return {}

    def _recurrent_state(self):
        h, c = self._s.raw_state()
        layers, uniform = self._layout()
        b = self.batch
        entries = []
        for layer in layers:
            hsz, psz, nd = layer["hidden_size"], layer["state_size"], layer["directions"]
            hb = h[layer["h_offset"] * b: layer["h_offset"] * b + nd * b * psz].reshape(nd, b, psz)
            cb = None
            if layer["kind"] == "lstm":
                cb = c[layer["c_offset"] * b: layer["c_offset"] * b + nd * b * hsz].reshape(nd, b, hsz)
            for d in range(nd):
                entries.append((hb[d].copy(), cb[d].copy()) if cb is not None else hb[d].copy())
        if uniform:
            if isinstance(entries[0], tuple):
                return np.stack([e[0] for e in entries]), np.stack([e[1] for e in entries])
            return np.stack(entries)
        return entries

    @state.setter
    def state(self, value) -> None:
        shapes = _conv_windows(self.engine.data)
        mean = self.engine._model.last_step_mean
        maxp = self.engine._model.last_step_max
        attn = self.engine._model.last_step_attention
        pool_keys = (({"mean_sum", "mean_steps"} if mean else set()) | ({"max_value", "max_seen"} if maxp
                                                                         else set())
                     | ({"attn_acc", "attn_max", "attn_sum"} if attn else set()))
        nmean = self._s.raw_window().size // self.batch - _fresh_windows(shapes, 1).size if pool_keys else 0
        if isinstance(value, dict):
            if not shapes and not pool_keys:
                raise ValueError("state: this model has no Conv1d over time nor mean, max or attention "
                                 "pooling; give the recurrent state (h, or (h, c)) without a dict")
            starts = [st for _p, _c, st, _n in shapes if st is not None]
            npad = sum(1 for *_r, padded in shapes if padded)
            keys = ({"recurrent"} | ({"windows"} if shapes else set()) | ({"countdowns"} if starts else set())
                    | ({"real_steps"} if npad else set()) | pool_keys)
            if set(value) != keys:
                order = ("recurrent", "windows", "countdowns", "real_steps", "mean_sum", "mean_steps",
                         "max_value", "max_seen", "attn_acc", "attn_max", "attn_sum")
                want = " and ".join(repr(k) for k in sorted(keys, key=order.index))
                raise ValueError(f"state: expected the keys {want}, got {sorted(value)}")
            wins = value["windows"] if shapes else []
            if not isinstance(wins, tuple | list) or len(wins) != len(shapes):
                raise ValueError(f"state['windows']: expected a list of {len(shapes)} arrays (one per Conv1d "
                                 f"or pooling over time), got {type(wins).__name__}")
            counts = None
            if starts:
                counts = _as_numpy(value["countdowns"])
                shape = (self.batch, len(starts))
                if not isinstance(counts, np.ndarray) or not np.issubdtype(counts.dtype, np.integer):
                    raise TypeError(f"state['countdowns']: expected an integer array of shape {shape}, got "
                                    f"{getattr(counts, 'dtype', type(counts).__name__)}")
                if counts.shape != shape:
                    raise ValueError(f"state['countdowns']: expected shape {shape}, got {counts.shape}")
            reals = None
            if npad:
                reals = _as_numpy(value["real_steps"])
                shape = (self.batch, npad)
                if not isinstance(reals, np.ndarray) or not np.issubdtype(reals.dtype, np.integer):
                    raise TypeError(f"state['real_steps']: expected an integer array of shape {shape}, got "
                                    f"{getattr(reals, 'dtype', type(reals).__name__)}")
                if reals.shape != shape:
                    raise ValueError(f"state['real_steps']: expected shape {shape}, got {reals.shape}")
            parts, k, kr = [], 0, 0
            for i, (w, (p, ch, start, padded)) in enumerate(zip(wins, shapes, strict=True)):
                w = _as_numpy(w)
                _check_state_array(f"state['windows'][{i}]", w, (self.batch, p, ch))
                parts.append(np.asarray(w, np.float32).reshape(self.batch, p * ch))
                if start is not None:
                    top = max(start[0], start[1] - 1)
                    c = counts[:, k]
                    if c.min() < 0 or c.max() > top:
                        raise ValueError(f"state['countdowns'][:, {k}]: expected values in [0, {top}], got "
                                         f"[{c.min()}, {c.max()}]")
                    parts.append(c.astype(np.float32)[:, None])
                    k += 1
                if padded:
                    c = reals[:, kr]
                    if c.min() < 0 or c.max() > p:
                        raise ValueError(f"state['real_steps'][:, {kr}]: expected values in [0, {p}], got "
                                         f"[{c.min()}, {c.max()}]")
                    parts.append(np.stack([c.astype(np.float32), np.zeros(self.batch, np.float32)], 1))
                    kr += 1
            flat = np.concatenate(parts, axis=1) if parts else np.zeros((self.batch, 0), np.float32)
            if not np.all(np.isfinite(flat)):
                raise ValueError("state['windows']: contain NaN or Inf")
            width = nmean // (int(mean) + int(maxp)) - 1 if mean or maxp else 0   # each part F + 1 floats
            if mean:
                flat = np.concatenate([flat, self._mean_part(value, width)], axis=1)
            if maxp:
                flat = np.concatenate([flat, self._max_part(value, width)], axis=1)
            if attn:
                flat = np.concatenate([flat, self._attn_part(value, nmean - 2)], axis=1)
            self._set_recurrent_state(value["recurrent"])
            self._s.set_raw_window(flat.reshape(-1))
            return
        self._set_recurrent_state(value)
        if shapes or pool_keys:   # the start of a sequence: fresh windows, no step in the pooling
            fresh = _fresh_windows(shapes, self.batch).reshape(self.batch, -1)
            self._s.set_raw_window(np.concatenate([fresh, np.zeros((self.batch, nmean), np.float32)], 1))

    def _mean_part(self, value: dict, width: int) -> np.ndarray:
        """``state["mean_sum"]`` and ``state["mean_steps"]`` checked, as the ``(B, width + 1)`` floats
        of ``rnc_state.win`` (the sums, then the count)."""
        total = _as_numpy(value["mean_sum"])
        _check_state_array("state['mean_sum']", total, (self.batch, width))
        steps = _as_numpy(value["mean_steps"])
        if not isinstance(steps, np.ndarray) or not np.issubdtype(steps.dtype, np.integer):
            raise TypeError(f"state['mean_steps']: expected an integer array of shape ({self.batch},), got "
                            f"{getattr(steps, 'dtype', type(steps).__name__)}")
        if steps.shape != (self.batch,):
            raise ValueError(f"state['mean_steps']: expected shape ({self.batch},), got {steps.shape}")
        if steps.min() < 0 or steps.max() > _MEAN_MAX_STEPS:
            raise ValueError(f"state['mean_steps']: expected values in [0, {_MEAN_MAX_STEPS}] (2**24), got "
                             f"[{steps.min()}, {steps.max()}]")
        return np.concatenate([np.asarray(total, np.float32), steps.astype(np.float32)[:, None]], axis=1)

    def _max_part(self, value: dict, width: int) -> np.ndarray:
        """``state["max_value"]`` and ``state["max_seen"]`` checked, as the ``(B, width + 1)`` floats
        of ``rnc_state.win`` (the maxima, then the seen flag 0 or 1)."""
        top = _as_numpy(value["max_value"])
        _check_state_array("state['max_value']", top, (self.batch, width))
        seen = _as_numpy(value["max_seen"])
        if not isinstance(seen, np.ndarray) or not (seen.dtype == np.bool_
                                                    or np.issubdtype(seen.dtype, np.integer)):
            raise TypeError(f"state['max_seen']: expected a bool array of shape ({self.batch},), got "
                            f"{getattr(seen, 'dtype', type(seen).__name__)}")
        if seen.shape != (self.batch,):
            raise ValueError(f"state['max_seen']: expected shape ({self.batch},), got {seen.shape}")
        if seen.size and (seen.min() < 0 or seen.max() > 1):
            raise ValueError(f"state['max_seen']: expected values in [0, 1] (False, True), got "
                             f"[{seen.min()}, {seen.max()}]")
        return np.concatenate([np.asarray(top, np.float32), seen.astype(np.float32)[:, None]], axis=1)

    def _attn_part(self, value: dict, width: int) -> np.ndarray:
        """``state["attn_acc"]``, ``["attn_max"]``, ``["attn_sum"]`` checked, as the ``(B, width + 2)``
        floats of ``rnc_state.win`` (acc, then max, then sum)."""
        acc = _as_numpy(value["attn_acc"])
        _check_state_array("state['attn_acc']", acc, (self.batch, width))
        cols = []
        for key in ("attn_max", "attn_sum"):
            v = _as_numpy(value[key])
            _check_state_array(f"state['{key}']", v, (self.batch,))
            cols.append(np.asarray(v, np.float32)[:, None])
        sm = cols[1][:, 0]
        if np.any((sm != 0) & (sm < 1)):
            raise ValueError("state['attn_sum']: expected 0 (no step since the reset) or values >= 1 (the "
                             f"step at the max adds exp(0) = 1), got min {sm[sm != 0].min()}")
        return np.concatenate([np.asarray(acc, np.float32)] + cols, axis=1)

    def _set_recurrent_state(self, value) -> None:
        layers, uniform = self._layout()
        b = self.batch
        nstates = sum(layer["directions"] for layer in layers)
        value = _as_numpy(value)
        if isinstance(value, tuple | list):
            value = type(value)(_as_numpy(v) if not isinstance(v, tuple | list) else tuple(map(_as_numpy, v))
                                for v in value)
        if (isinstance(value, list) and len(value) == 2 and uniform and layers[0]["kind"] == "lstm"
                and all(isinstance(v, np.ndarray) and v.ndim == 3 for v in value)):
            value = tuple(value)  # [h_n, c_n] as a PyTorch user may pass it: the pair
        if isinstance(value, list):
            entries = value
        else:
            is_pair = isinstance(value, tuple)
            lstm = uniform and layers[0]["kind"] == "lstm"
            if not uniform:
                raise ValueError("state: this model's layers differ in size/kind; give a list with one "
                                 "entry per (layer, direction)")
            if lstm != is_pair:
                raise ValueError("state: expected " + ("the pair (h, c)" if lstm else "an array h")
                                 + f" for this model, got {type(value).__name__}")
            parts = value if is_pair else (value,)
            want = {"h": (nstates, b, layers[0]["state_size"]), "c": (nstates, b, layers[0]["hidden_size"])}
            for name, p in zip(("h", "c"), parts, strict=False):
                _check_state_array(name, p, want[name])
            entries = [(parts[0][k], parts[1][k]) if is_pair else parts[0][k] for k in range(nstates)]
        if len(entries) != nstates:
            raise ValueError(f"state: expected {nstates} entries (one per layer and direction), "
                             f"got {len(entries)}")
        h, c = self._s.raw_state()
        h = h.copy()
        c = None if c is None else c.copy()
        k = 0
        for li, layer in enumerate(layers):
            hsz, psz, nd = layer["hidden_size"], layer["state_size"], layer["directions"]
            for d in range(nd):
                e = entries[k]
                lstm = layer["kind"] == "lstm"
                if lstm != isinstance(e, tuple):
                    want = "(h, c)" if lstm else "an array h"
                    raise ValueError(f"state[{k}] (layer {li}): expected {want}")
                eh = e[0] if lstm else e
                _check_state_array(f"state[{k}] h", eh, (b, psz))
                o = layer["h_offset"] * b + d * b * psz
                h[o:o + b * psz] = np.asarray(eh, np.float32).reshape(-1)
                if lstm:
                    _check_state_array(f"state[{k}] c", e[1], (b, hsz))
                    o = layer["c_offset"] * b + d * b * hsz
                    c[o:o + b * hsz] = np.asarray(e[1], np.float32).reshape(-1)
                k += 1
        self._s.set_raw_state(h, c)


def _embedding_dim(data: bytes) -> int:
    """The embedding record's dim (record 0 of a valid v2 file that starts with one)."""
    from rnncore.io.rnc_layout import LAYOUT

    return int(LAYOUT["rec_embedding"].unpack(data, LAYOUT["hdr2"].size)["dim"])


def _step_record_kinds(data: bytes) -> tuple[list, list, list]:
    """The per-step records of a (valid, v2) file by place: before the recurrent layers, after
    each recurrent layer (one list per layer: the records between it and the next, or after the
    last), after last_step (``frame_conv``, ``magnitude``, ``pointwise``)."""
    from rnncore.io.rnc import RECORD_KINDS
    from rnncore.io.rnc_layout import LAYOUT, v2_records

    names = {v: k for k, v in RECORD_KINDS.items()}
    out: tuple[list, list, list] = ([], [], [])
    if LAYOUT["hdr1"].unpack(data)["version"] != 2:
        return [], [[] for _ in range(LAYOUT["hdr1"].unpack(data)["num_layers"])], []
    place = 0
    for kind, _pos, _size in v2_records(data):
        name = names.get(kind, "unknown")
        if name == "recurrent":
            place = 1
            out[1].append([])
        elif name == "last_step":
            place = 2
        elif name in ("frame_conv", "magnitude", "pointwise", "layer_norm", "scale_shift", "conv_time",
                      "log_mel", "residual", "pool_time", "mul_halves", "concat", "instance_norm",
                      "positions"):
            (out[1][-1] if place == 1 else out[place]).append(name)
    return out


def _conv_windows(data: bytes) -> list:
    """``(P, C_in, start, padded)`` of each conv_time / pool_time record of a (valid, v2) file, in file
    order: the window ``P = dilation*(kernel_size-1)`` steps of ``C_in`` features its stream state
    keeps, and for a strided record ``start = (countdown at the start, stride)`` (else None): its
    countdown follows the window in ``rnc_state.win`` (rnncore.h); ``padded``: a padded pool_time or
    a conv_time padded beyond its reach (``left + right > P``), whose two counters (real steps taken,
    pad steps fed) follow (rnc_layout.h timepad)."""
    from rnncore.io.rnc import RECORD_KINDS
    from rnncore.io.rnc_layout import LAYOUT, v2_records

    out = []
    for kind, pos, size in v2_records(data):
        if kind == RECORD_KINDS["conv_time"]:
            r = LAYOUT["rec_conv_time"].unpack(data, pos)
            ci, k, st, dl = r["in_channels"], r["kernel_size"], r["stride"], r["dilation"]
            p = dl * (k - 1)
            left, right = p, 0   # causal unless a timepad tail (the record's last 16 bytes) says otherwise
            if size in (LAYOUT["rec_conv_time"].size + LAYOUT["timepad"].size,
                        LAYOUT["rec_conv_time"].size + LAYOUT["fconvq8"].size + LAYOUT["timepad"].size):
                pad = LAYOUT["timepad"].unpack(data, pos + size - LAYOUT["timepad"].size)
                left, right = pad["left"], pad["right"]
            out.append((p, ci, (p - left, st) if st > 1 or left < p else None, left + right > p))
        elif kind == RECORD_KINDS["pool_time"]:
            r = LAYOUT["rec_pool_time"].unpack(data, pos)
            ch, k, st, dl = r["channels"], r["kernel_size"], r["stride"], r["dilation"]
            p = dl * (k - 1)
            left = right = 0
            if size == LAYOUT["rec_pool_time"].size + LAYOUT["timepad"].size:
                pad = LAYOUT["timepad"].unpack(data, pos + size - LAYOUT["timepad"].size)
                left, right = pad["left"], pad["right"]
            out.append((p, ch, (p - left, st) if p > left or st > 1 else None, bool(left or right)))
    return out


def _fresh_windows(shapes: list, batch: int) -> np.ndarray:
    """The flat windows of a stream at the start of a sequence: zeros and the start countdowns."""
    row = []
    for p, ch, start, padded in shapes:
        row.append(np.zeros(p * ch, np.float32))
        if start is not None:
            row.append(np.array([start[0]], np.float32))
        if padded:
            row.append(np.zeros(2, np.float32))
    return np.tile(np.concatenate(row), batch) if row else np.zeros(0, np.float32)


def _restore_stream(engine: Engine, batch: int, state) -> Stream:
    s = engine.stream(batch)
    s.state = state
    return s


def _lengths_from_mask(mask, lengths, batch: int, xshape: tuple) -> np.ndarray:
    """Lengths (B,) from a (B, T) boolean prefix mask (True for the first lengths[b] steps)."""
    if lengths is not None:
        raise ValueError("lengths, mask: give one of them, not both")
    m = np.asarray(mask)
    steps = xshape[1] if len(xshape) >= 2 else None
    if m.dtype != np.bool_:
        raise TypeError(f"mask: expected a boolean array of shape ({batch}, T), got dtype {m.dtype}")
    if m.shape != (batch, steps):
        raise ValueError(f"mask: expected shape ({batch}, {steps}) (batch, time of X), got {m.shape}")
    n = m.sum(axis=1)
    bad = m != (np.arange(steps)[None, :] < n[:, None])
    if bad.any():
        b = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError("mask: expected a prefix mask (True for the first lengths[b] steps, then "
                         f"False); sequence {b} is not: {m[b].astype(int).tolist()}")
    return n.astype(np.int64)


def _as_numpy(a):
    """torch tensors (PyTorch users' h0/c0) as numpy arrays; anything else unchanged."""
    return a.detach().cpu().numpy() if hasattr(a, "detach") and hasattr(a, "cpu") else a


def _check_state_array(name: str, a, shape: tuple) -> None:
    if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
        got = f"dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(f"{name}: expected a float array of shape {shape}, got {got}")
    if a.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or Inf")


# ----------------------------------------------------------------------------------------------
# compile / save / load


def compile(model, precision: str = "f32", calibration=None,  # noqa: A001 - the API name
            state_scale: str | None = None, sparse=None, front_f32=None,
            input_dtype: str | None = None, front_bits: int = 8) -> Engine:
    """Compile an ``rc.nn`` model for the C core.

    Parameters
    ----------
    model : an ``rc.nn.RNN`` / ``GRU`` / ``LSTM``, or an ``rc.nn.Sequential`` of
        ``[Embedding | front-end] + recurrent layers (per-step layers and residuals between and around
        them) + [LastStep | MaskedMean | MaskedMax | AttentionPool] + [per-step layers] + [Linear]``
        (Dropout is skipped; the full list is in the refusal ``compile`` gives for anything else), a
        :class:`~rnncore.quant.ModelSpec`, or an imported ``OnnxGraph`` the lowering follows
        (docs/importers.md, "ONNX: whole graphs" and "Compiling a sequence graph"): a graph whose
        data is ``(T, B, F)`` runs as ``engine.run(x.transpose(1, 0, 2)).transpose(1, 0, 2)``;
        ``engine.graph_io`` names its tensors and layouts
    precision : "f32", "q8" (int8 weights, per-step int8 activations, float32 epilogue), "q4"
        (int4 weights in -7..7 with one scale per row, two per byte; q8's activations, exact int32
        products and epilogue; a q8 head; no cell options: docs/q8-contract.md, "q4 weights") or
        "int8" (fully integer, as ``rnncore quantize --precision int8``: int8 weights and
        activations, int16 gates and cell, no float in a step; the model a Cortex-M build of
        ``export-c --target cortex-m`` runs, bit for bit :mod:`rnncore.quant.integer`; float in,
        float out; docs/integer.md)
    calibration : q8 and q4: None for dynamic activation scales, representative inputs
        ``X (B, T, I)`` (or ``(X, lengths)``) to measure static scales with
        :func:`rnncore.quant.calibrate`, or a :class:`~rnncore.quant.Calibration`; int8 (required):
        ``X`` or ``(X, lengths)`` measured with :func:`rnncore.quant.integer.calibrate_int`, or an
        :class:`~rnncore.quant.integer.IntCalibration`
    state_scale : q8 and q4 only: the hidden states' scales. None (default): the calibration's when
        calibrated, else dynamic (max-abs per vector and step); "dynamic": always dynamic;
        "bounded": the fixed scale 1/127 of a state bounded in [-1, 1] (GRU, LSTM, tanh RNN; a
        ReLU layer is refused), no per-step scan (docs/q8-contract.md, "The bounded state scale")
    sparse : q8 only: None (dense), True or ``{"max_density": d, "block_rows": 8 | 16,
        "shared_gates": bool}``: each weight matrix whose share of nonzero ``block_rows`` x 4
        blocks is at most d (default 0.5, 16-row blocks) is stored block-sparse and run by the
        block-sparse kernels (the same outputs, bit for bit, as its dense form); the others stay
        dense. With ``shared_gates=True`` (the default) a GRU / LSTM matrix whose gates all have
        the same zero blocks (``BlockPruning(shared_gates=True)``) is stored gate-shared, faster than
        the per-gate layout on every ISA (docs/rnc-format.md); ``False`` keeps the per-gate layout.
        For pruned models (:class:`rnncore.nn.BlockPruning`).
    front_f32 : q8 only: None (every frame_conv and conv_time of the front-end int8: bit-exact, the
        same on every ISA), or the convolution records to keep in float32: an integer ``n`` is the
        n-th frame_conv (0: the first; a Conv1d within each step's frame, or a per-step Linear),
        ``"conv_time:n"`` the n-th conv_time (a Conv1d over time, as PyanNet's sinc convolution),
        ``"frame_conv:n"`` the n-th frame_conv; e.g. ``[2, 3]`` or ``["conv_time:0"]`` (those run
        the ISA's f32 product; docs/q8-contract.md, "A frame_conv or conv_time kept in float32").
        :func:`rnncore.quant.choose_front_f32` measures which on representative inputs.
    front_bits : q8 only: 8 (default) or 16: the frame_convs' weights and input codes. 16 runs
        every frame_conv not kept in float32 with int16 weights (per output channel), int16 codes
        of its input row (one dynamic scale per step) and exact int64 sums: bit-exact on every ISA,
        twice the frame_convs' weight bytes, about as fast as float32 frame_convs
        (docs/q8-contract.md, "A 16-bit product in the frame convolutions"; Silero VAD meets
        its decision target with it, docs/importers.md). Refused for a model without frame_conv.
    input_dtype : int8 only: the model input's integer type, None / ``"int8"`` (asymmetric int8,
        the default; an :class:`~rnncore.quant.integer.IntCalibration` brings its own) or
        ``"int16"`` (symmetric int16, TFLite's 16x8 activations, first layer only: for inputs with
        a wide range; docs/integer.md, "An int16 input")

    Returns
    -------
    Engine
    """
    if precision == "int8":
        if front_f32:
            raise ValueError(f"front_f32: expected None for precision='int8' (integer models have no "
                             f"per-step records), got {front_f32!r}")
        if front_bits != 8:
            raise ValueError(f"front_bits: expected 8 for precision='int8' (integer models have no "
                             f"per-step records), got {front_bits!r}")
        return Engine(*_build_int8(model, calibration, state_scale, sparse, input_dtype))
    if input_dtype is not None:
        raise ValueError(f"input_dtype: expected None for precision={precision!r} (the integer input "
                         f"type is precision='int8' only), got {input_dtype!r}")
    data, spec = build_rnc(model, precision, calibration, state_scale, sparse, front_f32, front_bits)
    eng = Engine(data, spec)
    if type(model).__name__ == "OnnxGraph":     # how the graph's tensors map to run()'s
        from rnncore.io.onnx_import._lower import lower_graph

        eng.graph_io = lower_graph(model)[1]
    return eng


def _build_int8(model, calibration, state_scale, sparse, input_dtype=None) -> tuple[bytes, ModelSpec]:
    """compile(precision="int8"): calibrate, quantise to integers, write precision 3 (the steps of
    ``rnncore quantize --precision int8``)."""
    from rnncore.io.rnc_int import write_int_rnc
    from rnncore.quant import integer as qi
    from rnncore.spec import spec_from_model

    for name, v in (("state_scale", state_scale), ("sparse", sparse)):
        if v is not None:
            raise ValueError(f"{name}: q8 and q4 only (an integer model's scales come from its "
                             f"calibration), got {v!r} with precision='int8'")
    if calibration is None:
        raise ValueError("calibration: precision='int8' needs representative inputs X (B, T, I) or "
                         "(X, lengths) (integer models have static scales), got None")
    if input_dtype is not None and input_dtype not in qi.INPUT_DTYPES:
        raise ValueError(f"input_dtype: expected one of {qi.INPUT_DTYPES}, got {input_dtype!r}")
    spec = spec_from_model(model)
    if isinstance(calibration, qi.IntCalibration):
        cal = calibration
    elif isinstance(calibration, tuple) and len(calibration) == 2:
        cal = qi.calibrate_int(spec, calibration[0], calibration[1], input_dtype=input_dtype or "int8")
    else:
        cal = qi.calibrate_int(spec, calibration, input_dtype=input_dtype or "int8")
    return write_int_rnc(qi.quantize_int_model(spec, cal, input_dtype=input_dtype)), spec


def save(model_or_engine, path: str | os.PathLike, precision: str = "f32") -> None:
    """Write an ``.rnc`` file: an :class:`Engine`'s bytes, or an ``rc.nn`` model compiled
    with ``precision``."""
    eng = model_or_engine if isinstance(model_or_engine, Engine) else compile(model_or_engine, precision)
    eng.save(path)


def load(path_or_bytes, *, max_bytes: int = MAX_MODEL_BYTES) -> Engine:
    """An :class:`Engine` from an ``.rnc`` file (path) or its bytes.

    Parameters
    ----------
    path_or_bytes : str, os.PathLike, bytes, bytearray or memoryview
    max_bytes : int
        largest file read from a path (default :data:`rnncore.io.files.MAX_MODEL_BYTES`, 2 GiB);
        a larger file, or one that is not a regular file (a FIFO, ``/dev/zero``, ...), is refused
        before it is read.

    Raises
    ------
    ValueError
        with the C loader's reason for a file that is not a valid model (truncated, corrupted,
        wrong version, sizes out of range, ...): the status and the offending field, e.g.
        ``record 1 (recurrent layer 0): dir0.w_hh: ...``.
    """
    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        data = bytes(path_or_bytes)
    elif not isinstance(path_or_bytes, str | os.PathLike):
        # open(3) would read file descriptor 3
        raise TypeError(f"path: expected a file path or the .rnc bytes, got {type(path_or_bytes).__name__}")
    else:
        data = read_file(path_or_bytes, max_bytes, ".rnc model file")
    try:
        return Engine(data)
    except ValueError as e:
        if isinstance(path_or_bytes, bytes | bytearray | memoryview) and "bad magic" not in str(e):
            raise
        where = "" if isinstance(path_or_bytes, bytes | bytearray | memoryview) else f"{path_or_bytes}: "
        hint = ("; a PyTorch/Keras/ONNX model is imported with rc.io.from_torch / from_keras / from_onnx "
                "(or `rnncore convert`), then rc.compile / rc.save") if "bad magic" in str(e) else ""
        raise ValueError(f"{where}{e}{hint}") from None
