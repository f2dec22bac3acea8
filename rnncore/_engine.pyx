# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, embedsignature=True
"""Thin binding of the C core (csrc/include/rnncore.h): models and streams; the public API is
rnncore.engine. The kernel table's entry points and the peak-rate loops for tests and benchmarks
are in rnncore._kernels.

Every call into C that computes runs with the GIL released. ``Stream.step(x, out=buf)`` checks
its arrays with a few pointer comparisons on the fast path (float32, C-contiguous, right shape)
and allocates nothing.
"""

cimport numpy as cnp
from libc.stdint cimport int8_t, int32_t, uint32_t

import numpy as np

cnp.import_array()


# ----------------------------------------------------------------------------------------------
# status, ISA


#: kernel-table op names, in rnc_op order (csrc/include/rnncore.h)
_OPS = ("gemv", "rnn_step", "gru_step", "lstm_step", "quantize", "gemm_deq", "spgemv",
        "rnn_step_sparse", "gru_step_sparse", "lstm_step_sparse", "int_step", "s8_matvec",
        "rfft_power", "spgemv_shared", "gru_step_shared", "lstm_step_shared", "gemm_q16")
#: rnc_precision order; "int8": fully-integer models (precision 3 files, RNC_INT8)
_PRECISIONS = ("f32", "q8", "q4", "int8")


def status_str(int code) -> str:
    """The C core's description of a status code."""
    return _status_text(<rnc_status>code)


def isa_name(int isa) -> str:
    cdef const char *name = NULL
    cdef rnc_status st = rnc_isa_name(<rnc_isa>isa, &name)
    if st != RNC_OK:
        _raise(st, f"isa {isa}")
    return name.decode()


def isa_from_name(str name) -> int:
    cdef rnc_isa isa
    cdef bytes b = name.encode()
    cdef rnc_status st = rnc_isa_from_name(b, &isa)
    if st != RNC_OK:
        known = [isa_name(i) for i in range(<int>RNC_ISA_COUNT)]
        raise ValueError(f"isa: expected one of {known}, got {name!r}")
    return <int>isa


def isa_table() -> list:
    """One dict per ISA path the C core knows: name, compiled, cpu_supported, available."""
    cdef int i, comp, cpu, avail
    out = []
    for i in range(<int>RNC_ISA_COUNT):
        rnc_isa_compiled(<rnc_isa>i, &comp)
        rnc_isa_cpu_supported(<rnc_isa>i, &cpu)
        rnc_isa_available(<rnc_isa>i, &avail)
        out.append({"id": i, "name": isa_name(i), "compiled": bool(comp), "cpu_supported": bool(cpu),
                    "available": bool(avail)})
    return out


def isa_best() -> str:
    cdef rnc_isa isa
    cdef rnc_status st = rnc_isa_best(&isa)
    if st != RNC_OK:
        _raise(st, "isa_best")
    return isa_name(<int>isa)


def isa_default() -> str:
    """The path RNNCORE_ISA asks for, or the best one; ValueError if RNNCORE_ISA is unusable."""
    cdef rnc_isa isa
    cdef rnc_status st = rnc_isa_default(&isa)
    if st != RNC_OK:
        _raise(st, "RNNCORE_ISA")
    return isa_name(<int>isa)


# ----------------------------------------------------------------------------------------------
# model and streams


def _aligned_bytes(data) -> cnp.ndarray:
    """A 64-byte aligned, read-only uint8 copy of ``data``."""
    src = np.frombuffer(data, dtype=np.uint8)
    raw = np.empty(src.shape[0] + 64, np.uint8)
    off = (-raw.ctypes.data) % 64
    out = raw[off:off + src.shape[0]]
    out[:] = src
    out.flags.writeable = False
    return out


cdef class Model:
    """A validated ``.rnc`` model in the C core (holds an aligned private copy of the bytes)."""

    cdef rnc_model m
    cdef rnc_model_info info
    cdef readonly object buffer
    cdef readonly list layers

    def __cinit__(self, data):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"model data: expected bytes, got {type(data).__name__}")
        self.buffer = _aligned_bytes(data)
        cdef cnp.ndarray b = self.buffer
        cdef const void *p = cnp.PyArray_DATA(b)
        cdef size_t n = b.shape[0]
        cdef rnc_status st
        cdef rnc_layer_info li
        cdef uint32_t k
        cdef const char *why = NULL
        if n == 0:
            raise ValueError("model data: empty buffer (not an .rnc file)")
        with nogil:
            st = rnc_model_init(&self.m, p, n)
        if st == RNC_E_ISA:
            import os
            _raise(st, f"RNNCORE_ISA={os.environ.get('RNNCORE_ISA')!r} (available: "
                       f"{[t['name'] for t in isa_table() if t['available']]})")
        if st != RNC_OK:
            rnc_model_error(&self.m, &why)
            detail = why.decode("utf-8", "replace") if why != NULL else ""
            err = ValueError(f"invalid .rnc model: {_status_text(st)}: {detail} (rnc_status {<int>st})"
                             if detail else f"invalid .rnc model: {_status_text(st)} (rnc_status {<int>st})")
            err.status = <int>st  # the rnc_status and the loader's one line ("<part>: <field>: ...")
            err.detail = detail
            raise err
        rnc_model_get_info(&self.m, &self.info)
        self.layers = []
        for k in range(self.info.num_layers):
            rnc_layer_get_info(&self.m, k, &li)
            self.layers.append({"kind": ("rnn_tanh", "rnn_relu", "gru", "lstm")[li.kind],
                                "reset_after": bool(li.reset_after), "directions": li.directions,
                                "input_size": li.input_size, "hidden_size": li.hidden_size,
                                "h_offset": li.h_offset, "c_offset": li.c_offset,
                                "state_size": li.proj_size or li.hidden_size})

    @property
    def precision(self) -> str:
        return _PRECISIONS[self.info.precision]

    @property
    def uses_ids(self) -> bool:
        return bool(self.info.uses_ids)

    @property
    def input_size(self) -> int:
        return self.info.input_size

    @property
    def output_size(self) -> int:
        return self.info.output_size

    @property
    def bidirectional(self) -> bool:
        return bool(self.info.bidirectional)

    @property
    def reverse(self) -> bool:
        """A layer reads its sequences backwards (cell option): whole sequences only."""
        return bool(self.m.plan.reverse)

    @property
    def num_states(self) -> int:
        return self.info.num_states

    @property
    def embed_num(self) -> int:
        return self.info.embed_num

    @property
    def has_head(self) -> bool:
        return bool(self.info.has_head)

    @property
    def last_step(self) -> bool:
        return bool(self.info.last_step)

    @property
    def last_step_mean(self) -> bool:
        """The pooling is the mean over the valid steps (``rnc_model_info.last_step_mean``)."""
        return bool(self.info.last_step_mean)

    @property
    def last_step_max(self) -> bool:
        """The pooling is the maximum over the valid steps (``rnc_model_info.last_step_max``)."""
        return bool(self.info.last_step_max)

    @property
    def last_step_last(self) -> bool:
        """With mean and/or max pooling: the last step is a part too, the pooled row is
        ``[last | mean | max]`` of those present (``rnc_model_info.last_step_last``)."""
        return bool(self.info.last_step_last)

    @property
    def last_step_attention(self) -> bool:
        """The pooling is attention over the valid steps (``rnc_model_info.last_step_attention``)."""
        return bool(self.info.last_step_attention)

    @property
    def model_bytes(self) -> int:
        return self.info.model_bytes

    @property
    def h_floats(self) -> int:
        return self.info.h_floats

    @property
    def c_floats(self) -> int:
        return self.info.c_floats

    def state_bytes(self, size_t batch) -> int:
        cdef size_t n = 0
        cdef rnc_status st = rnc_state_size(&self.m, batch, &n)
        if st != RNC_OK:
            _raise(st, "state_size")
        return n

    def run_scratch_bytes(self, size_t batch, size_t steps) -> int:
        """Bytes of scratch ``rnc_run`` needs for ``batch`` sequences of ``steps`` steps."""
        cdef size_t n = 0
        cdef rnc_status st = rnc_run_scratch_size(&self.m, batch, steps, &n)
        if st != RNC_OK:
            _raise(st, "run_scratch_size")
        return n

    @property
    def isa(self) -> str:
        cdef rnc_isa i
        rnc_model_get_isa(&self.m, &i)
        return isa_name(<int>i)

    def __repr__(self) -> str:
        kinds = "+".join(f"{l['kind']}{'x2' if l['directions'] == 2 else ''}({l['hidden_size']})"
                         for l in self.layers)
        return (f"<rnncore._engine.Model {kinds}, precision={self.precision!r}, in={self.input_size}, "
                f"out={self.output_size}, bytes={self.model_bytes}, isa={self.isa!r}>")

    def set_isa(self, str name):
        """Use the kernels of ISA path ``name`` ("auto": RNNCORE_ISA or the best)."""
        cdef rnc_isa i = RNC_ISA_AUTO if name == "auto" else <rnc_isa><int>isa_from_name(name)
        cdef rnc_status st = rnc_model_set_isa(&self.m, i)
        if st != RNC_OK:
            _raise(st, f"set_isa({name!r})")

    def stream(self, Py_ssize_t batch=1):
        return Stream(self, batch)

    def plan_row(self, int layer, str op, Py_ssize_t batch, str input="x", bint sums=False,
                 str precision=None) -> str:
        """Name of the kernel-table row the model's plan runs: ``layer``'s cell (``op`` its
        ``*_step``, ``input`` ``"x"`` or ``"gi"``; ``sums``: W_hh's kernel sums available, as in
        q8 files of version 2) or, with ``layer=-1``, the model-wide ``op`` (``"gemv"``,
        ``"gemm_deq"``, ``"quantize"``) at ``batch`` rows / columns."""
        cdef size_t row = 0
        cdef uint32_t lay = 0xFFFFFFFF if layer < 0 else <uint32_t>layer
        # quantize / gemm_deq / spgemv are q8 ops (a q4 model quantises its activations as q8);
        # precision: the model-wide op's (a q4 model's head is a q8 "gemv"), default the model's
        if precision is not None and precision not in _PRECISIONS:
            raise ValueError(f"precision: expected one of {_PRECISIONS}, got {precision!r}")
        cdef uint32_t prec = (_PRECISIONS.index(precision) if precision is not None else
                              1 if op in ("quantize", "gemm_deq", "spgemv", "spgemv_shared", "gemm_q16") else _PRECISIONS.index(self.precision))
        if op not in _OPS:
            raise ValueError(f"op: expected one of {_OPS}, got {op!r}")
        if input not in ("x", "gi"):
            raise ValueError(f"input: expected 'x' or 'gi', got {input!r}")
        if batch < 1:
            raise ValueError(f"batch: expected >= 1, got {batch}")
        cdef rnc_status st = rnc_model_plan_row(&self.m, lay, <uint32_t>_OPS.index(op), prec,
                                                <size_t>batch, 1 if input == "x" else 2, sums, &row)
        if st != RNC_OK:
            _raise(st, f"plan_row({layer}, {op!r}, {batch}, {input!r})")
        cdef rnc_kernel_desc d
        st = rnc_kernel_info(row, &d)
        if st != RNC_OK:
            _raise(st, f"kernel_info({row})")
        return d.name.decode()


cdef inline bint _fast_f32(object a, Py_ssize_t d0, Py_ssize_t d1) noexcept:
    """True when ``a`` is a C-contiguous float32 ndarray of shape (d0, d1)."""
    if not cnp.PyArray_CheckExact(a):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != cnp.NPY_FLOAT32 or cnp.PyArray_NDIM(arr) != 2 \
            or not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISALIGNED(arr):
        return False
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(arr)
    return dims[0] == d0 and dims[1] == d1


cdef inline bint _fast_i32(object a, Py_ssize_t d0) noexcept:
    if not cnp.PyArray_CheckExact(a):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return cnp.PyArray_TYPE(arr) == cnp.NPY_INT32 and cnp.PyArray_NDIM(arr) == 1 \
        and cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr) \
        and cnp.PyArray_DIMS(arr)[0] == d0


def _describe(a) -> str:
    if isinstance(a, np.ndarray):
        return (f"shape {a.shape}, dtype {a.dtype}" + ("" if a.flags.c_contiguous else ", non-contiguous")
                + ("" if a.flags.aligned else ", misaligned"))
    return f"{type(a).__name__}"


def _real_array(x, str name, str want):
    """``x`` as an ndarray of real numbers (float or integer; a TypeError naming ``name`` for
    None, strings, objects, bool or complex)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor (also one that requires grad)
        x = x.detach().cpu().numpy()
    a = x if isinstance(x, np.ndarray) else np.asarray(x) if x is not None else None
    if a is None or a.dtype.kind not in "fiu":
        got = _describe(a) if a is not None else "None"
        raise TypeError(f"{name}: expected {want}, got {got}")
    return a


cdef class Stream:
    """A stateful batch of streams of one model: ``y = s.step(x)``; ``s.reset()``; ``s.state``.

    One stream is one mutable state: calling it from two threads at the same time raises a
    ``RuntimeError`` (use one stream per thread; streams of one model run in parallel).
    """

    cdef Model model
    cdef rnc_state st
    cdef object _mem
    cdef readonly Py_ssize_t batch
    cdef Py_ssize_t nin, nout
    cdef bint ids
    cdef bint busy  # set (with the GIL held) while C runs on this state without the GIL

    def __cinit__(self, Model model, Py_ssize_t batch=1):
        if batch < 1:
            raise ValueError(f"batch: expected a positive integer, got {batch}")
        self.model = model
        self.batch = batch
        self.ids = model.info.uses_ids
        self.nin = model.info.input_size
        self.nout = model.info.output_size
        cdef size_t n = 0
        cdef rnc_status st = rnc_state_size(&model.m, <size_t>batch, &n)
        if st != RNC_OK:
            _raise(st, "state_size")
        raw = np.zeros(n + 64, np.uint8)
        off = (-raw.ctypes.data) % 64
        self._mem = raw[off:off + n]
        cdef cnp.ndarray mem = self._mem
        st = rnc_state_init(&model.m, <size_t>batch, cnp.PyArray_DATA(mem), n, &self.st)
        if st != RNC_OK:
            _raise(st, "state_init")

    def __repr__(self) -> str:
        return (f"<rnncore._engine.Stream batch={self.batch}, in={self.input_shape}, "
                f"out={self.output_shape}, precision={self.model.precision!r}, isa={self.model.isa!r}>")

    @property
    def engine_model(self) -> Model:
        return self.model

    @property
    def input_shape(self) -> tuple:
        if self.ids:
            return (self.batch,)
        return (self.batch, self.nin)

    @property
    def output_shape(self) -> tuple:
        return (self.batch, self.nout)

    def _coerce_x(self, x):
        if self.ids:
            a = np.asarray(x)
            if not np.issubdtype(a.dtype, np.integer):
                raise TypeError(f"x: expected integer token ids of shape ({self.batch},), got {_describe(a)}")
            if a.shape != (self.batch,):
                raise ValueError(f"x: expected token ids of shape ({self.batch},), got {_describe(a)}")
            if a.size and (a.min() < 0 or a.max() >= self.model.info.embed_num):
                raise ValueError(f"x: token ids must be in [0, {self.model.info.embed_num}), got "
                                 f"[{a.min()}, {a.max()}]")
            return np.require(a, np.int32, ("C", "A"))
        xa = _real_array(x, "x", f"a float32 array of shape ({self.batch}, {self.nin})")
        if xa.shape != (self.batch, self.nin):
            raise ValueError(f"x: expected shape ({self.batch}, {self.nin}) (batch, input_size), got "
                             f"{_describe(xa)}")
        return np.require(xa, np.float32, ("C", "A"))

    def step(self, x, out=None):
        """One time step for every stream of the batch.

        Parameters
        ----------
        x : (batch, input_size) float32 (other float arrays are converted), or (batch,) integer
            token ids for a model with an embedding
        out : optional (batch, output_size) float32 C-contiguous array written in place;
            with it (and a float32 C-contiguous ``x``) the call allocates nothing

        Returns
        -------
        (batch, output_size) float32 (``out`` if given), or None at a step without an output: a
        model with a strided layer over time (a Conv1d with stride s > 1 gives an output every s
        steps, a pooling over k steps with stride s its first after k steps, then every s) takes
        ``x`` into its window and gives nothing; ``out`` and the recurrent state are then untouched
        (rnc_step's RNC_NO_OUTPUT). Every other model returns an array at every step.
        """
        cdef rnc_status st
        cdef bint fast_x = _fast_i32(x, self.batch) if self.ids else _fast_f32(x, self.batch, self.nin)
        if not fast_x:
            x = self._coerce_x(x)
        if out is None:
            out = np.empty((self.batch, self.nout), np.float32)
        elif not _fast_f32(out, self.batch, self.nout) or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out):
            raise ValueError(f"out: expected a writable, aligned, C-contiguous float32 array of shape "
                             f"({self.batch}, {self.nout}), got {_describe(out)}")
        cdef void *xp = cnp.PyArray_DATA(<cnp.ndarray>x)
        cdef float *yp = <float *>cnp.PyArray_DATA(<cnp.ndarray>out)
        if self.busy:
            self._raise_busy()
        self.busy = True
        if self.ids:
            with nogil:
                st = rnc_step_ids(&self.model.m, &self.st, <const int32_t *>xp, yp)
        else:
            with nogil:
                st = rnc_step(&self.model.m, &self.st, <const float *>xp, yp)
        self.busy = False
        if st != RNC_OK:
            if st == RNC_NO_OUTPUT:
                return None
            self._step_error(st, x)
        return out

    def _step_error(self, int st, x):
        if st == RNC_E_VALUE and not self.ids:
            raise ValueError(f"x: contains NaN or Inf ({_status_text(<rnc_status>st)}); the state is unchanged")
        if st == RNC_E_BIDIRECTIONAL:
            raise ValueError("step: the model has a bidirectional or reverse layer; use run() on whole sequences")
        if st == RNC_E_UNSUPPORTED and self.model.m.seq_norm:
            raise ValueError("step: the model has an instance_norm record (InstanceNorm1d), which normalises "
                             "each channel over the whole sequence; use run() on whole sequences")
        if st == RNC_E_NONFINITE:
            self._nonfinite_error("step")
        if st == RNC_E_STATE and self.model.info.last_step_mean and self._mean_full(1):
            raise ValueError("step: the mean pooling has counted 2**24 steps since the reset, the most its "
                             "float count holds exactly; reset() the stream")
        if st == RNC_E_STATE and (self.model.m.strided or self.model.m.flush):
            raise ValueError("step: the strided layers' countdowns in stream.state are not valid integers "
                             "or differ between the stream rows (a batch steps in lockstep); reset() or "
                             "assign a state taken from a stream")
        _raise(<rnc_status>st, "step")

    def _mean_full(self, size_t steps) -> bool:
        """Some row's mean pooling count plus ``steps`` passes 2**24 (``rnc_step``/``rnc_run``'s
        RNC_E_STATE for it)."""
        rows = self.raw_window().reshape(self.batch, -1)
        # the count ends the mean's row: the last float, or before the max's row (maxima, seen flag)
        cdef Py_ssize_t at = -(<Py_ssize_t>self.model.m.mean_w + 2) if self.model.info.last_step_max else -1
        counts = rows[:, at]
        return bool((counts.astype(np.float64) + steps > 16777216.0).any())

    def _nonfinite_error(self, str who):
        """FloatingPointError for RNC_E_NONFINITE, naming the layer, sequence and step."""
        cdef rnc_nonfinite nf = self.st.nonfinite
        nl = self.model.info.num_layers
        row = f"sequence {nf.row}" if who == "run" else f"stream row {nf.row}"
        cause = "float32 overflow"
        if nf.layer > nl:
            what = "the front-end's output (the per-step records before the recurrent layers) is NaN/Inf"
            cause = ("float32 overflow, or -inf from a max pooling window that holds no input (as "
                     "PyTorch; a q8 convolution cannot quantise it)")
        elif nf.layer == nl:
            what = "the head's output (before its activation) is NaN/Inf"
        else:
            what = (f"layer {nf.layer} (ReLU RNN{', backward' if nf.direction else ''}) state is "
                    "NaN/Inf")
        if nf.step == RNC_NONFINITE_ON_ENTRY:
            raise FloatingPointError(
                f"{who}: {what} in the state passed in ({row}), left there by an earlier overflow; "
                "reset() the stream or assign a finite stream.state")
        at = f", step {nf.step}" if who == "run" else ""
        raise FloatingPointError(
            f"{who}: {what} at {row}{at} ({cause}; the NumPy reference gives Inf/NaN "
            "from here on); no output is returned and the state is left as computed: reset() the "
            "stream or assign a finite stream.state before going on")

    def _raise_busy(self):
        raise RuntimeError("stream: already running in another thread; a stream is one state and "
                           "takes one call at a time (give each thread its own engine.stream())")

    def reset(self):
        """Zero every h (and c) and the conv_time windows (or the learned initial states)."""
        if self.busy:
            self._raise_busy()
        rnc_state_reset(&self.st)

    def run(self, X, lengths=None):
        """Whole sequences from the current state; the final state stays in the stream.

        X : (batch, T, input_size) floats, or (batch, T) token ids; lengths : (batch,) ints in
        [0, T] or None. Returns (batch, T_out, output_size) float32, or (batch, output_size) for a
        model with last-step pooling. T_out = T except for a model with a strided layer over time:
        then the output steps the state's countdowns let through (:meth:`out_steps`), each
        sequence's own outputs first, zeros after them.
        """
        cdef Py_ssize_t b = self.batch, t
        if self.ids:
            a = np.asarray(X)
            if not np.issubdtype(a.dtype, np.integer):
                raise TypeError(f"X: expected integer token ids of shape ({b}, T), got {_describe(a)}")
            if a.ndim != 2 or a.shape[0] != b:
                raise ValueError(f"X: expected integer token ids of shape ({b}, T), got {_describe(a)}")
            if a.size and (a.min() < 0 or a.max() >= self.model.info.embed_num):
                raise ValueError(f"X: token ids must be in [0, {self.model.info.embed_num}), got "
                                 f"[{a.min()}, {a.max()}]")
            xa = np.require(a, np.int32, ("C", "A"))
        else:
            xr = _real_array(X, "X", f"a float array (batch, T, {self.nin})")
            if xr.ndim != 3 or xr.shape[0] != b or xr.shape[2] != self.nin:
                raise ValueError(f"X: expected shape ({b}, T, {self.nin}) (batch, time, features), "
                                 f"got {_describe(xr)}")
            xa = np.require(xr, np.float32, ("C", "A"))
        t = xa.shape[1]
        cdef cnp.ndarray la
        cdef const int32_t *lp = NULL
        if lengths is not None:
            lraw = np.asarray(lengths)
            if not np.issubdtype(lraw.dtype, np.integer) or lraw.shape != (b,):
                raise ValueError(f"lengths: expected {b} integers (one per sequence), got {_describe(lraw)}")
            if b and (lraw.min() < 0 or lraw.max() > t):
                raise ValueError(f"lengths: expected values in [0, {t}], got [{lraw.min()}, {lraw.max()}]")
            la = np.require(lraw, np.int32, ("C", "A"))
            lp = <const int32_t *>cnp.PyArray_DATA(la)
        # rnc_run writes every element of y (zeros past the lengths included): np.empty, not
        # np.zeros, whose calloc clears a reused block first (6.5 MB at B=64, T=100, H=256)
        cdef size_t t_out = self.out_steps(t)
        if self.model.info.last_step:
            y = np.empty((b, self.nout), np.float32)
        else:
            y = np.empty((b, t_out, self.nout), np.float32)
        cdef size_t nscratch = 0
        cdef rnc_status st = rnc_run_scratch_size(&self.model.m, <size_t>b, <size_t>t, &nscratch)
        if st != RNC_OK:
            _raise(st, "run_scratch_size")
        raw = np.empty(nscratch + 64, np.uint8)
        off = (-raw.ctypes.data) % 64
        cdef cnp.ndarray scratch = raw[off:off + nscratch]
        cdef cnp.ndarray xarr = xa, yarr = y
        cdef void *sp = cnp.PyArray_DATA(scratch)
        cdef void *xp = cnp.PyArray_DATA(xarr)
        cdef float *yp = <float *>cnp.PyArray_DATA(yarr)
        if self.busy:
            self._raise_busy()
        self.busy = True
        if self.ids:
            with nogil:
                st = rnc_run_ids(&self.model.m, &self.st, <const int32_t *>xp, lp, <size_t>t, yp, sp,
                                 nscratch)
        else:
            with nogil:
                st = rnc_run(&self.model.m, &self.st, <const float *>xp, lp, <size_t>t, yp, sp, nscratch)
        self.busy = False
        if st != RNC_OK:
            if st == RNC_E_VALUE and not self.ids:
                raise ValueError("X: contains NaN or Inf within the lengths (the state is unchanged; "
                                 "padding past a length may be anything)")
            if st == RNC_E_NONFINITE:
                self._nonfinite_error("run")
            if st == RNC_E_STATE and self.model.info.last_step_mean and self._mean_full(t_out):
                raise ValueError(f"run: the mean pooling's count of steps since the reset plus the {t_out} "
                                 "steps of X would pass 2**24, the most its float count holds exactly; "
                                 "reset() the stream or run fewer steps")
            if st == RNC_E_STATE and self.model.info.flush_steps:
                raise ValueError("run: a sequence of the stream is open (steps taken, no flush() yet) and the "
                                 "model pads the end of each sequence; flush() or reset() first")
            _raise(st, "run")
        return y

    def out_steps(self, Py_ssize_t steps) -> int:
        """The output steps ``T_out`` of :meth:`run` over ``steps`` input steps from the current
        state (``rnc_run_out_steps``): ``steps`` without strided layers over time."""
        if steps < 0:
            raise ValueError(f"steps: expected a non-negative integer, got {steps}")
        cdef size_t n = 0
        cdef rnc_status st = rnc_run_out_steps(&self.model.m, &self.st, <size_t>steps, &n)
        if st != RNC_OK:
            if st == RNC_E_STATE:
                raise ValueError("run: the strided layers' countdowns in stream.state are not valid "
                                 "integers; reset() or assign a state taken from a stream")
            _raise(st, "run_out_steps")
        return n

    def flush(self):
        """End of input (``rnc_flush``): the outputs a model with padding at the end of the input
        (PyTorch ``Conv1d(padding=p)``, Keras ``padding="same"``, ...) still owes, ``(batch, n,
        output_size)`` float32 (``n`` may be 0); the layers over time then start afresh for a new
        sequence, h and c stay as they ended."""
        cdef size_t n = 0, cap = self.model.info.flush_steps
        cdef rnc_status st
        y = np.empty((max(<Py_ssize_t>cap, 1), self.batch, self.nout), np.float32)
        cdef float *yp = <float *>cnp.PyArray_DATA(<cnp.ndarray>y)
        if self.busy:
            self._raise_busy()
        self.busy = True
        with nogil:
            st = rnc_flush(&self.model.m, &self.st, yp, cap, &n)
        self.busy = False
        if st != RNC_OK:
            if st == RNC_E_NONFINITE:
                self._nonfinite_error("flush")
            if st == RNC_E_BIDIRECTIONAL:
                raise ValueError("flush: the model has a bidirectional or reverse layer; use run() on whole sequences")
            if st == RNC_E_UNSUPPORTED and self.model.m.seq_norm:
                raise ValueError("flush: the model has an instance_norm record (InstanceNorm1d); use run() on "
                                 "whole sequences")
            if st == RNC_E_STATE:
                raise ValueError("flush: the countdowns or counters of the layers over time in stream.state are "
                                 "not valid; reset() or assign a state taken from a stream")
            _raise(st, "flush")
        return np.ascontiguousarray(y[:n].transpose(1, 0, 2))

    @property
    def lookahead(self) -> int:
        return self.model.info.lookahead

    @property
    def flush_steps(self) -> int:
        return self.model.info.flush_steps

    # -- state ------------------------------------------------------------------------------
    def raw_state(self):
        """Copies of the flat C state arrays ``(h, c)`` (c is None without an LSTM layer)."""
        if self.busy:
            self._raise_busy()
        h = np.array(<float[:self.st.h_count]>self.st.h) if self.st.h_count else np.zeros(0, np.float32)
        c = np.array(<float[:self.st.c_count]>self.st.c) if self.st.c_count else None
        return h, c

    def raw_window(self):
        """A copy of the flat conv_time windows (``rnc_state.win``; empty without conv_time)."""
        if self.busy:
            self._raise_busy()
        if not self.st.win_count:
            return np.zeros(0, np.float32)
        return np.array(<float[:self.st.win_count]>self.st.win)

    def set_raw_window(self, w):
        """Write the flat conv_time windows (``win_count`` finite floats)."""
        cdef cnp.ndarray wa = np.require(w, np.float32, ("C", "A")).reshape(-1)
        cdef size_t i
        if <size_t>wa.shape[0] != self.st.win_count:
            raise ValueError(f"state windows: expected {self.st.win_count} floats, got {wa.shape[0]}")
        if not np.all(np.isfinite(wa)):
            raise ValueError("state windows: contain NaN or Inf")
        if self.busy:
            self._raise_busy()
        cdef float *wp = <float *>cnp.PyArray_DATA(wa)
        for i in range(self.st.win_count):
            self.st.win[i] = wp[i]

    def set_raw_state(self, h, c=None):
        cdef cnp.ndarray ha = np.require(h, np.float32, ("C", "A")).reshape(-1)
        cdef size_t i
        if <size_t>ha.shape[0] != self.st.h_count:
            raise ValueError(f"state h: expected {self.st.h_count} floats, got {ha.shape[0]}")
        if not np.all(np.isfinite(ha)):
            raise ValueError("state h: contains NaN or Inf")
        cdef cnp.ndarray ca
        if self.st.c_count:
            if c is None:
                raise ValueError("state c: this model has LSTM layers; c is required")
            ca = np.require(c, np.float32, ("C", "A")).reshape(-1)
            if <size_t>ca.shape[0] != self.st.c_count:
                raise ValueError(f"state c: expected {self.st.c_count} floats, got {ca.shape[0]}")
            if not np.all(np.isfinite(ca)):
                raise ValueError("state c: contains NaN or Inf")
        if self.busy:
            self._raise_busy()
        cdef float *hp = <float *>cnp.PyArray_DATA(ha)
        for i in range(self.st.h_count):
            self.st.h[i] = hp[i]
        cdef float *cp
        if self.st.c_count:
            cp = <float *>cnp.PyArray_DATA(ca)
            for i in range(self.st.c_count):
                self.st.c[i] = cp[i]

    def time_step(self, x, out, long long n) -> float:
        """Seconds per ``rnc_step`` call, timed over ``n`` calls in a C loop (no Python)."""
        if self.ids:
            raise ValueError("time_step: float-input models only")
        if n < 1:
            raise ValueError(f"n: expected a positive number of steps, got {n}")
        if not _fast_f32(x, self.batch, self.nin) or not _fast_f32(out, self.batch, self.nout):
            raise ValueError("time_step: x and out must be C-contiguous float32 of the step shapes")
        cdef const float *xp = <const float *>cnp.PyArray_DATA(<cnp.ndarray>x)
        cdef float *yp = <float *>cnp.PyArray_DATA(<cnp.ndarray>out)
        cdef long long i
        cdef double t0, t1
        cdef rnc_status st = RNC_OK
        if self.busy:
            self._raise_busy()
        self.busy = True
        with nogil:
            t0 = _now()
            for i in range(n):
                st = rnc_step(&self.model.m, &self.st, xp, yp)
            t1 = _now()
        self.busy = False
        if st != RNC_OK and st != RNC_NO_OUTPUT:
            _raise(st, "time_step")
        return (t1 - t0) / n
