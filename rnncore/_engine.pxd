# Declarations of the C core's public API (csrc/include/rnncore.h) used by rnncore/_engine.pyx and
# rnncore/_kernels.pyx (which cimports this file), and the small helpers both use.
from libc.stdint cimport int8_t, int32_t, uint32_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec


cdef extern from "rnncore.h" nogil:
    ctypedef enum rnc_status:
        RNC_OK
        RNC_E_ARG
        RNC_E_MAGIC
        RNC_E_VERSION
        RNC_E_TRUNCATED
        RNC_E_CHECKSUM
        RNC_E_CORRUPT
        RNC_E_UNSUPPORTED
        RNC_E_ALIGN
        RNC_E_ISA
        RNC_E_SIZE
        RNC_E_VALUE
        RNC_E_BIDIRECTIONAL
        RNC_E_STATE
        RNC_E_NONFINITE
        RNC_NO_OUTPUT
        RNC_STATUS_COUNT

    ctypedef enum rnc_isa:
        RNC_ISA_GENERIC
        RNC_ISA_COUNT
        RNC_ISA_AUTO

    ctypedef enum rnc_op:
        RNC_OP_GEMV
        RNC_OP_RNN_STEP
        RNC_OP_GRU_STEP
        RNC_OP_LSTM_STEP
        RNC_OP_COUNT

    const char *rnc_status_str(rnc_status s)

    rnc_status rnc_isa_name(rnc_isa isa, const char **name)
    rnc_status rnc_isa_from_name(const char *name, rnc_isa *isa)
    rnc_status rnc_isa_compiled(rnc_isa isa, int *yes)
    rnc_status rnc_isa_cpu_supported(rnc_isa isa, int *yes)
    rnc_status rnc_isa_available(rnc_isa isa, int *yes)
    rnc_status rnc_isa_best(rnc_isa *isa)
    rnc_status rnc_isa_default(rnc_isa *isa)

    ctypedef struct rnc_plan:
        uint32_t bidirectional
        uint32_t reverse

    ctypedef struct rnc_model:
        rnc_plan plan
        size_t mean_w
        uint32_t strided
        size_t flush
        uint32_t seq_norm

    ctypedef struct rnc_model_info:
        uint32_t precision
        uint32_t num_layers
        uint32_t uses_ids
        uint32_t input_size
        uint32_t output_size
        uint32_t bidirectional
        uint32_t num_states
        uint32_t embed_num
        uint32_t has_head
        uint32_t head_activation
        size_t h_floats
        size_t c_floats
        size_t model_bytes
        uint32_t last_step
        uint32_t last_step_bidirectional
        size_t lookahead
        size_t flush_steps
        uint32_t last_step_mean
        uint32_t last_step_attention
        uint32_t last_step_max
        uint32_t last_step_last

    ctypedef struct rnc_layer_info:
        uint32_t kind
        uint32_t reset_after
        uint32_t directions
        uint32_t input_size
        uint32_t hidden_size
        size_t h_offset
        size_t c_offset
        uint32_t proj_size

    rnc_status rnc_model_init(rnc_model *model, const void *buf, size_t len)
    rnc_status rnc_model_error(const rnc_model *model, const char **text)
    rnc_status rnc_model_get_info(const rnc_model *model, rnc_model_info *info)
    rnc_status rnc_layer_get_info(const rnc_model *model, uint32_t layer, rnc_layer_info *info)
    rnc_status rnc_model_set_isa(rnc_model *model, rnc_isa isa)
    rnc_status rnc_model_get_isa(const rnc_model *model, rnc_isa *isa)

    ctypedef struct rnc_nonfinite:
        uint32_t layer
        uint32_t direction
        size_t row
        size_t step

    size_t RNC_NONFINITE_ON_ENTRY

    ctypedef struct rnc_state:
        rnc_nonfinite nonfinite
        size_t batch
        float *h
        float *c
        size_t h_count
        size_t c_count
        float *win
        size_t win_count

    rnc_status rnc_state_size(const rnc_model *model, size_t batch, size_t *bytes)
    rnc_status rnc_state_init(const rnc_model *model, size_t batch, void *mem, size_t bytes,
                              rnc_state *state)
    rnc_status rnc_state_reset(rnc_state *state)
    rnc_status rnc_step(const rnc_model *model, rnc_state *state, const float *x, float *y)
    rnc_status rnc_step_ids(const rnc_model *model, rnc_state *state, const int32_t *ids, float *y)
    rnc_status rnc_run_scratch_size(const rnc_model *model, size_t batch, size_t steps, size_t *bytes)
    rnc_status rnc_run_out_steps(const rnc_model *model, const rnc_state *state, size_t steps,
                                 size_t *out_steps)
    rnc_status rnc_flush_out_steps(const rnc_model *model, const rnc_state *state, size_t *out_steps)
    rnc_status rnc_flush(const rnc_model *model, rnc_state *state, float *y, size_t capacity,
                         size_t *out_steps)
    rnc_status rnc_run(const rnc_model *model, rnc_state *state, const float *x,
                       const int32_t *lengths, size_t steps, float *y, void *scratch,
                       size_t scratch_bytes)
    rnc_status rnc_run_ids(const rnc_model *model, rnc_state *state, const int32_t *ids,
                           const int32_t *lengths, size_t steps, float *y, void *scratch,
                           size_t scratch_bytes)

    ctypedef struct rnc_kernel_desc:
        const char *name
        uint32_t op
        uint32_t precision
        uint32_t isa
        uint32_t input
        uint32_t flags
        uint32_t min_batch
        uint32_t max_batch

    rnc_status rnc_model_plan_row(const rnc_model *model, uint32_t layer, uint32_t op,
                                  uint32_t precision, size_t batch, uint32_t input, int corr,
                                  size_t *row)

    rnc_status rnc_kernel_count(size_t *count)
    rnc_status rnc_kernel_info(size_t index, rnc_kernel_desc *desc)
    rnc_status rnc_kernel_q8_gemv(rnc_isa isa, const int8_t *packed, size_t rp, size_t kp,
                                  const int8_t *xq, size_t batch, int32_t *acc)
    rnc_status rnc_kernel_f32_gemv(rnc_isa isa, const float *packed, size_t rp, size_t k,
                                   const float *x, size_t batch, float *y)
    rnc_status rnc_quantize_q8(const float *v, size_t n, float static_scale, int8_t *q, float *scale)
    rnc_status rnc_fast_tanh(const float *x, size_t n, float *y)
    rnc_status rnc_fast_sigmoid(const float *x, size_t n, float *y)
    rnc_status rnc_crc32(const void *data, size_t len, uint32_t *crc)


# ---- helpers shared by both extensions

cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + 1e-9 * <double>ts.tv_nsec


cdef inline str _status_text(rnc_status st):
    return rnc_status_str(st).decode("utf-8", "replace")


cdef inline int _raise(rnc_status st, str what) except -1:
    raise ValueError(f"{what}: {_status_text(st)} (rnc_status {<int>st})")
