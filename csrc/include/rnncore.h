/*
 * rnncore.h -- the whole public C API of the rnncore C core.
 *
 * C99, no dependencies, no allocation, no mutable global state.
 *
 *   - Every function returns an rnc_status (RNC_OK == 0), except rnc_status_str().
 *     Nothing prints, exits or aborts on bad input.
 *   - A model (rnc_model, caller-owned struct) points into a read-only .rnc buffer that must
 *     outlive it (flash, mmap, a bytes object); rnc_model_init() validates the whole buffer
 *     (magic, version, checksum, every size/offset/count/enum) before anything uses it.
 *   - The working state of a stream lives in caller memory: rnc_state_size() tells how many
 *     bytes, rnc_state_init() lays an rnc_state over them. Distinct states may run in parallel
 *     threads on one model (the model is only read while running).
 *   - Kernels are chosen per model from a kernel table by instruction set (ISA): the best one
 *     this CPU supports, or the one named by the environment variable RNNCORE_ISA at
 *     rnc_model_init() time, or the one set with rnc_model_set_isa().
 *
 * See docs/c-api.md for the full description and docs/rnc-format.md for the file format.
 */
#ifndef RNNCORE_H
#define RNNCORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RNC_VERSION_MAJOR 0
#define RNC_VERSION_MINOR 1
#define RNC_FORMAT_VERSION 2u      /* newest .rnc file version this library reads (what rnncore writes) */
#define RNC_FORMAT_VERSION_MIN 1u  /* oldest .rnc file version this library still reads */

#define RNC_MAX_LAYERS 16u          /* recurrent layers per model */
#define RNC_MAX_HIDDEN 65536u       /* hidden_size limit */
#define RNC_MAX_FEATURES 1048576u   /* input_size / embedding_dim / head output limit */
#define RNC_MAX_VOCAB 16777216u     /* embedding rows limit */

/* ------------------------------------------------------------------------------------------
 * Status codes
 * ---------------------------------------------------------------------------------------- */
typedef enum rnc_status {
    RNC_OK = 0,
    RNC_E_ARG = 1,          /* NULL pointer, zero batch, bad enum value passed by the caller */
    RNC_E_MAGIC = 2,        /* not an .rnc buffer (bad magic) */
    RNC_E_VERSION = 3,      /* .rnc format version not supported */
    RNC_E_TRUNCATED = 4,    /* buffer shorter than the header or the declared file size */
    RNC_E_CHECKSUM = 5,     /* CRC32 mismatch */
    RNC_E_CORRUPT = 6,      /* inconsistent header/descriptor: size, offset, count, enum, overlap */
    RNC_E_UNSUPPORTED = 7,  /* valid request the C core does not support */
    RNC_E_ALIGN = 8,        /* buffer (model or state memory) not aligned as required */
    RNC_E_ISA = 9,          /* ISA unknown, not compiled in, or not supported by this CPU */
    RNC_E_SIZE = 10,        /* caller-provided memory too small / size arithmetic overflow */
    RNC_E_VALUE = 11,       /* non-finite input value, token id out of range, bad length */
    RNC_E_BIDIRECTIONAL = 12, /* step() on a model with a bidirectional layer (use run()) */
    RNC_E_STATE = 13,       /* state was not initialised for this model */
    RNC_E_NONFINITE = 14,   /* a state or head output became NaN/Inf (overflow): see rnc_state.nonfinite */
    RNC_NO_OUTPUT = 15,     /* not an error: rnc_step consumed x, but a strided record over time
                               (conv_time stride > 1, pool_time) gives no output at this step: y
                               and the recurrent state are untouched (docs/c-api.md, "Steps without
                               an output") */
    RNC_STATUS_COUNT = 16
} rnc_status;

/* Short English description of a status ("ok", "bad magic", ...). Never NULL. */
const char *rnc_status_str(rnc_status s);

/* ------------------------------------------------------------------------------------------
 * Enumerations (values are also the values stored in .rnc files)
 * ---------------------------------------------------------------------------------------- */
/* q4: int4 weights (-7..7, one scale per row, two per byte) with q8 activations and epilogue
 * (docs/q8-contract.md, "q4 weights"); a q4 model's head is q8. */
/* int8: a fully-integer model (precision 3 files, docs/integer.md): int8 weights and activations,
 * int16 gates and cell, fixed-point requantisation, no float in a step; x is quantised with the
 * file's input scale, y dequantised, the state held as floats that map to the integers exactly
 * (docs/c-api.md, "Fully-integer models"). Not counted in RNC_PRECISION_COUNT, which bounds
 * the precisions of the float-activation engine (and of version 1 files). */
typedef enum rnc_precision {
    RNC_F32 = 0,
    RNC_Q8 = 1,
    RNC_Q4 = 2,
    RNC_PRECISION_COUNT = 3,
    RNC_INT8 = 3
} rnc_precision;

typedef enum rnc_cell_kind {
    RNC_RNN_TANH = 0,
    RNC_RNN_RELU = 1,
    RNC_GRU = 2,
    RNC_LSTM = 3,
    RNC_CELL_KIND_COUNT = 4
} rnc_cell_kind;

typedef enum rnc_activation {
    RNC_ACT_NONE = 0,
    RNC_ACT_RELU = 1,
    RNC_ACT_SIGMOID = 2,
    RNC_ACT_TANH = 3,
    RNC_ACT_SOFTMAX = 4,
    RNC_ACT_LOG_SOFTMAX = 5,
    RNC_ACTIVATION_COUNT = 6
} rnc_activation;

/* Instruction-set paths. All values are declared here so that the header does not change when
 * paths are added; a path exists in a build when rnc_isa_compiled() says so. */
typedef enum rnc_isa {
    RNC_ISA_GENERIC = 0,     /* portable C */
    RNC_ISA_AVX2 = 1,        /* x86-64 AVX2 + FMA */
    RNC_ISA_AVX512 = 2,      /* x86-64 AVX-512 F/BW/VL/DQ */
    RNC_ISA_AVX512VNNI = 3,  /* AVX-512 + AVX512_VNNI */
    RNC_ISA_AVXVNNI = 4,     /* AVX2 + AVX-VNNI (VEX vpdpbusd) */
    RNC_ISA_AMX = 5,         /* AVX-512 VNNI + AMX-INT8 */
    RNC_ISA_NEON = 6,        /* ARM NEON (armv7 / aarch64) */
    RNC_ISA_NEONDOT = 7,     /* aarch64 NEON + dot product (sdot) */
    RNC_ISA_COUNT = 8,
    RNC_ISA_AUTO = 255       /* for rnc_model_set_isa(): RNNCORE_ISA if set, else the best path */
} rnc_isa;

/* ------------------------------------------------------------------------------------------
 * ISA queries
 * ---------------------------------------------------------------------------------------- */
rnc_status rnc_isa_name(rnc_isa isa, const char **name);          /* "generic", "avx2", ... */
rnc_status rnc_isa_from_name(const char *name, rnc_isa *isa);     /* inverse; RNC_E_ISA if unknown */
rnc_status rnc_isa_compiled(rnc_isa isa, int *yes);               /* kernels for it in this build */
rnc_status rnc_isa_cpu_supported(rnc_isa isa, int *yes);          /* CPU (+OS state) can run it */
rnc_status rnc_isa_available(rnc_isa isa, int *yes);              /* compiled && cpu_supported */
rnc_status rnc_isa_best(rnc_isa *isa);                            /* best available path */
/* The path RNNCORE_ISA asks for (or the best one when unset); RNC_E_ISA when the variable names
 * an unknown or unavailable path. */
rnc_status rnc_isa_default(rnc_isa *isa);

/* ------------------------------------------------------------------------------------------
 * Model
 * ---------------------------------------------------------------------------------------- */
/* A block-sparse q8 matrix (private; docs/rnc-format.md, "Block-sparse q8 weights"): row block
 * b's blocks are i = rowptr[b] .. rowptr[b+1]-1, block i covers inputs 4 cols[i] .. +3 and holds
 * bh*4 bytes (byte r*4 + j = W[bh b + r, 4 cols[i] + j]). In a sparse layer (rnc_layer.sparse)
 * both matrices are passed to the kernels as this structure; a dense one has bh = 0 and `dense`
 * (the packed layout). The gate-shared layout (gates = G > 0, bh = 16; layer flags SHARED_IH/_HH):
 * row block b is unit block b (rows g*Hp + 16 b + r of every gate g), entry i covers inputs
 * 4 cols[i] .. +3 of all G gates and holds G*64 bytes (byte 64 g + 4 r + j = W[g Hp + 16 b + r,
 * 4 cols[i] + j]); row_blocks = Hp / 16, nnz counts entries. */
typedef struct rnc_sparse_q8 {
    const uint32_t *rowptr;
    const int32_t *sums;          /* per row: sum_k W[r, k] */
    const uint16_t *cols;
    const int8_t *blocks;
    const int8_t *dense;
    uint32_t bh, row_blocks, nnz;
    uint32_t gates;               /* gate-shared layout: G (rows per gate: 16 row_blocks); else 0 */
} rnc_sparse_q8;

typedef struct rnc_layer {   /* private: filled by rnc_model_init, read with rnc_layer_get_info */
    uint32_t kind, reset_after, dirs, input_size, hidden_size;
    uint32_t gates, hp, kx, kh;   /* G, round16(H), padded K of W_ih and W_hh */
    float x_scale, h_scale[2];    /* static activation scales (q8), 0 = dynamic */
    float x_inv, h_inv[2];        /* their inverses 1.0f / scale (0 when dynamic), set at load */
    struct {
        const void *w_ih, *w_hh;
        const float *s_ih, *s_hh, *b_ih, *b_hh;
        const int32_t *hh_sums;   /* q8 v2: sum_k Wq_hh[r, k] per row (G*Hp), else NULL */
        rnc_sparse_q8 sp_ih, sp_hh; /* sparse layers: what the cells get as w_ih, w_hh */
    } dir[2];
    uint32_t sparse;              /* RNC_LAYER_FLAG_SPARSE_IH | _HH (rnc_layout.h), 0 = dense */
    size_t h_offset, c_offset;    /* per batch row: h at h_offset*batch floats into rnc_state.h */
    uint32_t variant;             /* the record has cell options (opt): the variant cell runs */
    uint32_t proj, out;           /* LSTM projection P (0: none); h / output width per direction */
    uint32_t unbounded;           /* the state can overflow float32 (ReLU-like activations): checked */
    struct {                      /* cell options (v2 files, docs/rnc-format.md "Cell options") */
        uint32_t flags;           /* RNC_CELLOPT_* of rnc_layout.h */
        float clip;
        uint8_t act[2][3];        /* per direction, activation slots (RNN f; GRU f, g; LSTM f, g, h) */
        float alpha[2][3], beta[2][3];
        const float *peepholes;   /* D x 3 x H (p_i, p_f, p_o) or NULL */
        const float *initial_h, *initial_c; /* D x out, D x H or NULL: the state reset/init give */
        const void *w_hr;         /* proj: D * round16(P) packed rows of H inputs */
        const float *s_hr;        /* q8: their row scales */
        /* layer norm (flag RNC_CELLOPT_LAYER_NORM, rnc_layout.h cellln): per direction gains then
         * shifts, D x 2 x G*H (ln_ih, ln_hh) and D x 2 x H (ln_c, LSTM), or NULL */
        const float *ln_ih, *ln_hh, *ln_c;
        float ln_eps;
        uint32_t ln_flags;        /* RNC_CELLLN_* */
    } opt;
    struct {                      /* RNC_INT8 layers: the cellint's numbers (rnc_layout.h) */
        const int8_t *w_ih, *w_hh, *e_ih, *e_hh;   /* (G*H, I), (G*H, H) row-major; shifts */
        const int32_t *b_ih, *b_hh, *m_ih, *m_hh;  /* per row */
        int32_t m_h, e_h, m_rh, e_rh, x_zp, h_zp, cell_shift, cell_clip, table;
        int32_t input_s16;        /* RNC_CELLINT_INPUT_S16: the input is int16 */
        double x_scale, h_scale;
    } iq;
} rnc_layer;

/* A per-step record (private; docs/rnc-format.md, "Per-step records"): a front-end layer before
 * the recurrent layers or a pointwise activation after them, applied to every step alone. */
#define RNC_MAX_FRONT 64u           /* per-step records per model */
typedef struct rnc_front_op {
    uint32_t kind;                /* RNC_REC_FRAME_CONV / _POINTWISE / _MAGNITUDE (rnc_layout.h) */
    uint32_t in_w, out_w;         /* features per step in and out */
    uint32_t cin, cout, k, L, stride, dil, groups, pl, pr, reflect; /* frame_conv */
    uint32_t lout, cg, cog;       /* frame_conv: L_out, C_in / groups, C_out / groups */
    const float *w, *b;           /* frame_conv: groups packed matrices (round16(cog) x cg*k), C_out */
    uint32_t act;                 /* pointwise: RNC_PW_* */
    float alpha, beta;
    float eps;                    /* layer_norm (its weight, bias in w, b; scale_shift: scale, shift) */
    uint32_t win;                 /* conv_time, pool_time: the window P = dilation (k - 1) steps of cin floats */
    size_t win_off;               /* conv_time, pool_time: its window's first float in a stream row's window */
    uint32_t phase;               /* strided records: 1 = a countdown float follows the window */
    uint32_t skip0;               /* strided records: the countdown at the start of a sequence */
    uint32_t pool_op;             /* pool_time: RNC_POOL_MAX / RNC_POOL_AVG (rnc_layout.h) */
    uint32_t tpad_l, tpad_r;      /* conv_time, pool_time: padding over time (rnc_layout.h timepad) */
    uint32_t tpad_excl;           /* pool_time average: pad steps left out of the count */
    uint32_t tcount;              /* padded pool_time, conv_time padded beyond P: 2 counters (real, pad steps) */
    uint32_t nfreq, power, log;   /* log_mel: n_fft/2 + 1 bins, 1 or 2, RNC_MEL_LOG_* (n_fft in_w) */
    float log_c;                  /* log_mel: log_offset (log) or amin (dB) */
    const float *window, *dft, *fbw; /* log_mel: window, packed (cos | -sin) rows, filter weights */
    const uint32_t *span;         /* log_mel: (first bin, count) per filter */
    uint32_t fft_m, fft_nst;      /* log_mel by FFT (kernels/f32_fft_generic.c): n_fft / 2 complex
                                     points, passes (fft_m 0: the tables' product) */
    uint8_t fft_radix[16];        /* log_mel by FFT: each pass's radix (4, 2, 3, 5) */
    const float *s;               /* q8 frame_conv / conv_time: per-row weight scales, w then int8 (NULL: f32) */
    uint32_t q16;                 /* q8 frame_conv: 1 = the 16 x 16 form (w int16 rows of round16(cg*k)) */
    uint32_t src;                 /* residual: the front[] index whose input it adds */
    size_t save_off;              /* residual: that input's copy in a row's save area (floats) */
    uint32_t xres;                /* residual: its span crosses a recurrent record; its source's
                                     input is kept per row in the skip area (xres_floats a row) and
                                     src is a front[] index or RNC_MAX_FRONT + a layer index */
} rnc_front_op;

/* The per-model plan (private): which kernel-table row runs each op, by batch range, resolved
 * once for the model's ISA (docs/c-api.md, "The plan"). */
#define RNC_PLAN_PICKS 4
typedef struct rnc_plan_op {
    uint32_t n;                   /* picks in use; batch ranges ascending, covering 1..2^32-1 */
    struct {
        uint32_t lo, hi;          /* batch rows (cells) / columns (products) served */
        int16_t row;              /* kernel-table row with W_hh's kernel sums available */
        int16_t row_plain;        /* ... and without (v1 files) */
    } pick[RNC_PLAN_PICKS];
} rnc_plan_op;
/* Byte offsets of a step's scratch areas in rnc_state.work (private: model.c) */
typedef struct rnc_step_work {
    size_t xin, xq, sx, cell, head, fa, fb, fr, fscr, ints, tw, fsave, xsave, pos, ypos, total;
} rnc_step_work;
typedef struct rnc_plan {
    rnc_plan_op gemm[RNC_PRECISION_COUNT]; /* products by columns: heads, f32 and q4 projections */
    rnc_plan_op gemm_deq, quantize; /* q8 */
    rnc_plan_op spgemv;           /* q8 block-sparse products (sparse layers' projections) */
    rnc_plan_op s8_matvec;        /* int8: the integer products (cells and head) */
    rnc_plan_op rfft;             /* f32 real FFT of a log_mel record (rnc_fft_args) */
    rnc_plan_op cell_x[RNC_MAX_LAYERS];    /* each layer's cell, the input vector given */
    rnc_plan_op cell_gi[RNC_MAX_LAYERS];   /* ... its projection given */
    uint32_t bidirectional;       /* any layer has two directions (no rnc_step) */
    uint32_t reverse;             /* any layer reads its sequences backwards (no rnc_step) */
    uint32_t unbounded;           /* any layer's state is unbounded (ReLU): checked on entry */
    rnc_step_work work1;          /* the step scratch's layout for one row (total 0: none) */
    rnc_plan_op spgemv_shared;    /* q8 block-sparse products of a gate-shared W_ih (either layout) */
    rnc_plan_op gemm_q16;         /* q8 frame_convs' 16 x 16 products */
} rnc_plan;

#define RNC_ERROR_TEXT_SIZE 256u /* bytes of rnc_model's error text, NUL included */

typedef struct rnc_model {   /* caller-owned; fields are private, use the functions below */
    char error[RNC_ERROR_TEXT_SIZE]; /* why rnc_model_init refused the buffer (rnc_model_error) */
    const unsigned char *buf;
    size_t file_size;
    uint32_t precision, num_layers, input_size, output_size, uses_ids, last_step, last_step_bidir;
    uint32_t embed_num, embed_dim, head, head_in, head_out, head_act, head_kx;
    float head_scale, head_inv;   /* the head input's static scale (0 = dynamic), 1.0f / it */
    const float *embed;
    const void *head_w;
    const float *head_s, *head_b;
    struct {                      /* RNC_INT8 head: the linint (rnc_layout.h) */
        const int8_t *w, *e;
        const int32_t *b, *m;
        double out_scale;
    } ihead;
    rnc_layer layer[RNC_MAX_LAYERS];
    uint32_t num_stages;          /* the model's layers in order, by record kind (rnc_layout.h: */
    uint8_t stage[RNC_MAX_LAYERS + 3 + RNC_MAX_FRONT]; /* embedding, recurrent (layer[] in order),
                                     last_step, linear, the per-step kinds (front[] in order)) */
    uint32_t num_front;           /* per-step records, in file order */
    rnc_front_op front[RNC_MAX_FRONT];
    size_t front_w;               /* widest per-step record input or output (floats per row) */
    size_t front_scratch;         /* floats a frame_conv needs per row (windows + products) */
    size_t win_floats;            /* conv_time / pool_time windows per stream row (rnc_state.win),
                                     then the mean pooling's running sum and count (or the max
                                     pooling's running maxima and seen flag) */
    uint32_t last_step_mean;      /* the pooling record is the mean over the valid steps */
    uint32_t last_step_max;       /* ... and/or the maximum over them (its row at max_off) */
    size_t mean_w, mean_off;      /* its features; the sum's offset in each win row (count after) */
    size_t fft_floats;            /* log_mel by FFT: its twiddles in a state's work (rnc_state_init) */
    size_t res_floats;            /* residual records' saved inputs per row (their features) */
    size_t xres_floats;           /* the same for residuals whose span crosses a recurrent record */
    uint32_t seq_norm;            /* instance_norm records: the last one's front[] index + 1 (0: none;
                                     rnc_run only, its front-end in parts over whole sequences) */
    size_t seq_w;                 /* their widest input (floats a step of rnc_run's part buffers) */
    uint32_t strided;             /* some record has a countdown: steps may give no output */
    uint32_t post_conv;           /* a frame_conv follows a recurrent record (rnc_run: not in place) */
    uint32_t positions;           /* 0, or a positions record's P: the layers step P times per step */
    size_t flush;                 /* the sum of the records' right pads: most outputs rnc_flush gives */
    size_t lookahead;             /* input steps an output waits for (rnc_model_info) */
    size_t lookahead_stride;      /* loader: the product of the strides of the records so far */
    size_t h_floats, c_floats;    /* per batch row */
    size_t max_feat, max_kpad, max_gates_hp;
    uint32_t isa;
    rnc_plan plan;                /* resolved by rnc_model_set_isa (model.c) */
    uint32_t magic_ok;
    uint32_t attn, attn_a;        /* the pooling record is attention (attnpool), of attn_a units, */
    const float *attn_w, *attn_b, *attn_v; /* over mean_w features from mean_off (acc, max, sum) */
    uint32_t last_step_last;      /* with mean and/or max: the last step too, [last | mean | max] */
    size_t max_off;               /* the max's running maxima in each win row (seen flag after) */
} rnc_model;

typedef struct rnc_model_info {
    uint32_t precision;      /* rnc_precision */
    uint32_t num_layers;
    uint32_t uses_ids;       /* 1: input is int32 token ids (Embedding), one per step */
    uint32_t input_size;     /* features per step (1 when uses_ids) */
    uint32_t output_size;    /* features per step of the output (head_out, or D*H of the last layer) */
    uint32_t bidirectional;  /* 1 if any layer is bidirectional (step() unavailable) */
    uint32_t num_states;     /* sum over layers of directions (PyTorch's L*D) */
    uint32_t embed_num;      /* vocabulary size (0 without Embedding) */
    uint32_t has_head, head_activation;
    size_t h_floats;         /* floats of all h per batch row (state layout below) */
    size_t c_floats;         /* floats of all LSTM c per batch row */
    size_t model_bytes;      /* file size */
    uint32_t last_step;      /* 1: run() pools the last valid step: y is (B, output_size) */
    uint32_t last_step_bidirectional; /* ... and takes the backward half at t = 0 */
    size_t lookahead;        /* input steps a stream's output waits for (records padded on the right
                                of their window, docs/c-api.md "Look-ahead"): 0 for causal models */
    size_t flush_steps;      /* most outputs rnc_flush gives (the sum of the records' right pads;
                                0: rnc_flush gives none, rnc_run is rnc_step's steps) */
    uint32_t last_step_mean; /* with last_step: run() pools the mean over each sequence's valid steps
                                (and rnc_step the mean over the stream's steps since its reset) */
    uint32_t last_step_attention; /* with last_step: run() pools attention over each sequence's valid
                                steps (AttentionPool; rnc_step over the stream's steps since its reset) */
    uint32_t last_step_max;  /* with last_step: run() pools the maximum over each sequence's valid steps
                                (MaskedMax; rnc_step over the stream's steps since its reset) */
    uint32_t last_step_last; /* with last_step_mean and/or last_step_max: the pooled row is [last | mean
                                | max] of those present (rnncore.nn.ConcatPool), output_size = parts x F */
} rnc_model_info;

typedef struct rnc_layer_info {
    uint32_t kind;           /* rnc_cell_kind */
    uint32_t reset_after;    /* GRU form (1 = PyTorch's) */
    uint32_t directions;     /* 1 or 2 */
    uint32_t input_size, hidden_size;
    size_t h_offset;         /* this layer's h block starts at rnc_state.h + h_offset * batch */
    size_t c_offset;         /* LSTM: c block at rnc_state.c + c_offset * batch (else 0) */
    uint32_t proj_size;      /* LSTM projection (cell option): h is proj_size wide; 0 = none */
} rnc_layer_info;

/* Validate the .rnc buffer and point `model` into it. `buf` must stay valid and unchanged while
 * the model is used, and be at least 4-byte aligned (64 recommended). `len` may exceed the file
 * size declared in the header (trailing bytes are ignored). Selects the ISA from RNNCORE_ISA
 * (RNC_E_ISA if it names an unavailable path) or the best available one. */
rnc_status rnc_model_init(rnc_model *model, const void *buf, size_t len);
/* Why rnc_model_init refused a buffer, in one line naming the part and the field and the value
 * found: "<part>: <field>: <problem>", e.g. "record 1 (recurrent, layer 0): dir0.w_hh: offset 1280
 * + 960 bytes past the end of the file (2048 bytes)" (docs/rnc-format.md, "What the C loader
 * checks"). *text points into the model (valid until its next rnc_model_init) and is "" after a
 * successful init. The model is otherwise unusable after a refusal, as before. */
rnc_status rnc_model_error(const rnc_model *model, const char **text);
rnc_status rnc_model_get_info(const rnc_model *model, rnc_model_info *info);
rnc_status rnc_layer_get_info(const rnc_model *model, uint32_t layer, rnc_layer_info *info);
/* Force the kernels of one ISA path (or RNC_ISA_AUTO). Not thread-safe against running steps. */
rnc_status rnc_model_set_isa(rnc_model *model, rnc_isa isa);
rnc_status rnc_model_get_isa(const rnc_model *model, rnc_isa *isa);

/* ------------------------------------------------------------------------------------------
 * State (caller memory)
 *
 * Layout of the float state, per stream batch B (documented, stable):
 *   h: for each layer l, for each direction d (0 fwd, 1 bwd): B x H_l floats (row-major),
 *      the blocks back to back in that order (PyTorch h_n order [l0 fwd, l0 bwd, l1 fwd, ...]).
 *      Layer l's block starts at h + layer_info.h_offset * B.
 *   c: the same for the LSTM layers only (other layers have no c).
 *   win: the windows of the conv_time and pool_time records (each keeps its last
 *      P = dilation (kernel_size - 1) inputs): per batch row, the records in file order, each P x
 *      in_channels floats, oldest step first (zeros after init/reset: the start of a sequence),
 *      then, for a record that can skip steps (conv_time with stride > 1, pool_time unless
 *      kernel_size = stride = 1), one float: the countdown, the steps it still skips before its
 *      next output (an integer; at the start P for pool_time, 0 for conv_time, then stride - 1
 *      after each output). A step or run refuses a countdown that is not such an integer
 *      (RNC_E_STATE), and rnc_step one that differs between the rows of the batch.
 * For a stack of equal-size layers this is exactly PyTorch's h_n (L*D, B, H) (and c_n).
 * h, c and win may be read and written between calls (save/restore, set an initial state).
 * ---------------------------------------------------------------------------------------- */
/* Where rnc_step/rnc_run found the values that made them return RNC_E_NONFINITE. */
typedef struct rnc_nonfinite {
    uint32_t layer;       /* recurrent layer index, or num_layers for the head (Linear) */
    uint32_t direction;   /* 0 forward, 1 backward */
    size_t row;           /* batch row (stream / sequence) */
    size_t step;          /* run: time step t of the call; step: 0; RNC_NONFINITE_ON_ENTRY: the
                             state passed in already held NaN/Inf in that layer */
} rnc_nonfinite;
#define RNC_NONFINITE_ON_ENTRY ((size_t)-1)

typedef struct rnc_state {
    const rnc_model *model;
    size_t batch;
    float *h;             /* h_count floats */
    float *c;             /* c_count floats (NULL when no LSTM layer) */
    size_t h_count, c_count;
    unsigned char *work;  /* private scratch used by step()/run() */
    size_t work_bytes;
    rnc_nonfinite nonfinite; /* set when step()/run() return RNC_E_NONFINITE */
    float *win;           /* win_count floats: the conv_time windows (NULL without conv_time) */
    size_t win_count;
} rnc_state;

/* Bytes of caller memory an rnc_state of `batch` rows needs (includes alignment slack). */
rnc_status rnc_state_size(const rnc_model *model, size_t batch, size_t *bytes);
/* Lay a state over `mem` (4-byte aligned, `bytes` >= rnc_state_size) and zero h and c (or write
 * the layers' learned initial states, cell options of the file, into every row). */
rnc_status rnc_state_init(const rnc_model *model, size_t batch, void *mem, size_t bytes,
                          rnc_state *state);
rnc_status rnc_state_reset(rnc_state *state);  /* h = c = 0 (or the learned initial states) */

/* One step for every stream of the batch. x: (B, input_size) floats, row-major; y: (B,
 * output_size); both 4-byte aligned (RNC_E_ALIGN). Updates the state. RNC_E_BIDIRECTIONAL when a layer is bidirectional or reverse;
 * RNC_E_VALUE when x holds NaN/Inf (the state is then unchanged).
 * RNC_E_NONFINITE when a ReLU RNN layer's new state or the head's output (before its activation)
 * holds NaN/Inf (float32 overflow; the other cells' states are bounded), or a ReLU layer's state
 * holds NaN/Inf on entry; state->nonfinite says where. y is then not written and the state is
 * left as computed: reset or restore it (every later step/run refuses it). Same in f32 and q8
 * and on every ISA path (docs/c-api.md, "Non-finite values"). rnc_run returns the same status
 * (y and the state then partly written). */
rnc_status rnc_step(const rnc_model *model, rnc_state *state, const float *x, float *y);
/* A model with a strided record over time (conv_time stride > 1, pool_time) gives an
 * output only at some steps: rnc_step then returns RNC_NO_OUTPUT (not an error) at the others,
 * with x consumed (the records' windows moved on), y not written and the recurrent state
 * unchanged. Every other model returns RNC_OK or an error at every step, as always. */
/* Same for an Embedding model: ids (B) int32 in [0, embed_num). */
rnc_status rnc_step_ids(const rnc_model *model, rnc_state *state, const int32_t *ids, float *y);

/* Whole sequences. x: (B, T, input_size) floats; y: (B, T, output_size) (T_out steps with strided
 * records over time: rnc_run_out_steps below), or (B, output_size) when
 * the model pools the last step (rnc_model_info.last_step: y[b] = head(out[b, lengths[b]-1]), the
 * backward half at t = 0 with last_step_bidirectional; a zero vector for lengths[b] == 0, then
 * the head). step() of a last_step model returns head(h_t) at every step. lengths: B int32 in
 * [0, T] or NULL (all T); PyTorch packed-sequence semantics: y is zero past a sequence's length,
 * its state stops changing there, and a backward direction starts at its last valid step.
 * The state holds the initial states on entry (h0/c0, both directions) and the final ones on
 * return. scratch: caller memory of rnc_run_scratch_size(model, B, T) bytes (4-byte aligned):
 * buffers for one chunk of steps (the time axis is processed in chunks: bounded whatever T is)
 * plus, for a stack, the sequences between layers (docs/c-api.md, "Scratch contract").
 * x (or ids), y and scratch must not overlap (RNC_E_ARG); rnc_step allows y == x.
 * x/ids, y and lengths must be 4-byte aligned (RNC_E_ALIGN). */
rnc_status rnc_run_scratch_size(const rnc_model *model, size_t batch, size_t steps, size_t *bytes);
rnc_status rnc_run(const rnc_model *model, rnc_state *state, const float *x,
                   const int32_t *lengths, size_t steps, float *y, void *scratch,
                   size_t scratch_bytes);
rnc_status rnc_run_ids(const rnc_model *model, rnc_state *state, const int32_t *ids,
                       const int32_t *lengths, size_t steps, float *y, void *scratch,
                       size_t scratch_bytes);
/* The output steps T_out of an rnc_run over `steps` input steps from the state as it is: T_out =
 * steps for a model without strided records; with them, the largest over the rows of the
 * outputs the records' countdowns let through (docs/c-api.md, "Steps without an output"; from a
 * reset state, one strided record: ceil(steps / stride) for conv_time, floor((steps - P - 1) /
 * stride) + 1 or 0 for pool_time, as PyTorch's Conv1d after the causal left pad and
 * MaxPool1d / AvgPool1d). rnc_run then writes y as (B, T_out, output_size) (rnc_model_info.
 * last_step: (B, output_size), the last output step of each sequence); sequence b has the
 * outputs its own countdowns and lengths[b] give, zeros after them. RNC_E_STATE for a countdown
 * that is not a valid integer. */
rnc_status rnc_run_out_steps(const rnc_model *model, const rnc_state *state, size_t steps,
                             size_t *out_steps);

/* End of input (docs/c-api.md, "Look-ahead"): a model whose records pad the end of their input
 * (rnc_model_info.flush_steps > 0: PyTorch Conv1d(padding=p), Keras padding "same", ...) gives
 * its last outputs only when it knows the input has ended. rnc_flush feeds every such record its
 * right pad steps, as rnc_step would (y: (n, B, output_size), step k's rows at y + k B
 * output_size; n = *out_steps, at most flush_steps, RNC_E_SIZE when more than capacity steps),
 * then starts the records over time afresh for a new sequence (h and c stay as they ended).
 * rnc_step's outputs followed by rnc_flush's are rnc_run's over the whole sequence, bit for bit.
 * rnc_flush_out_steps: the n rnc_flush would give from the state as it is. */
rnc_status rnc_flush_out_steps(const rnc_model *model, const rnc_state *state, size_t *out_steps);
rnc_status rnc_flush(const rnc_model *model, rnc_state *state, float *y, size_t capacity,
                     size_t *out_steps);

/* ------------------------------------------------------------------------------------------
 * Kernel table (tests, benchmarks)
 * ---------------------------------------------------------------------------------------- */
typedef enum rnc_op {
    RNC_OP_GEMV = 0,      /* y = W x for a batch of vectors (q8: int32 accumulators) */
    RNC_OP_RNN_STEP = 1,  /* fused RNN step (tanh or relu) */
    RNC_OP_GRU_STEP = 2,  /* fused GRU step (both reset forms) */
    RNC_OP_LSTM_STEP = 3, /* fused LSTM step */
    RNC_OP_QUANTIZE = 4,  /* q8: quantise one activation row */
    RNC_OP_GEMM_DEQ = 5,  /* q8: input projection with its dequantisation (float32 out) */
    RNC_OP_SPGEMV = 6,    /* q8: block-sparse product (the matrix an rnc_sparse_q8) */
    RNC_OP_RNN_STEP_SPARSE = 7,  /* the fused steps of layers with block-sparse weights */
    RNC_OP_GRU_STEP_SPARSE = 8,
    RNC_OP_LSTM_STEP_SPARSE = 9,
    RNC_OP_INT_STEP = 10,  /* int8: the fully-integer step (every cell kind, csrc/src/int/) */
    RNC_OP_S8_MATVEC = 11, /* int8: y = b + W x, int8 x int8 -> exact int32 */
    RNC_OP_RFFT_POWER = 12, /* f32: a log_mel record's power spectrum by a real FFT */
    RNC_OP_SPGEMV_SHARED = 13, /* q8: block-sparse product, the matrix in either layout (gate-shared too) */
    RNC_OP_GRU_STEP_SHARED = 14, /* the fused steps of layers with a gate-shared block-sparse matrix */
    RNC_OP_LSTM_STEP_SHARED = 15,
    RNC_OP_GEMM_Q16 = 16,  /* q8 files: a frame_conv's 16 x 16 product (int16 x int16 -> exact int64) */
    RNC_OP_COUNT = 17
} rnc_op;

typedef struct rnc_kernel_desc {
    const char *name;     /* e.g. "q8_gru_step_avx2" */
    uint32_t op;          /* rnc_op */
    uint32_t precision;   /* rnc_precision */
    uint32_t isa;         /* rnc_isa */
    uint32_t input;       /* 0: any input, 1: the input vector given (steps, per-step runs),
                             2: its projection given (whole-sequence runs below 4 sequences) */
    uint32_t flags;       /* 1: needs W_hh's kernel sums (v2 q8 files), 2: not GRU reset_after = 0 */
    uint32_t min_batch, max_batch; /* batch rows (cells) or columns (products); 0 = unbounded */
} rnc_kernel_desc;

rnc_status rnc_kernel_count(size_t *count);
rnc_status rnc_kernel_info(size_t index, rnc_kernel_desc *desc);
/* The kernel-table row the model's plan runs for `layer`'s cell (or, with layer ==
 * RNC_PLAN_MODEL, for the op's model-wide product: op RNC_OP_GEMV / RNC_OP_GEMM_DEQ / ...) at
 * `batch` rows (columns), input mode `input` (1: input vector, 2: projection), with W_hh's
 * kernel sums available (`sums`: q8 v2 files have them). */
#define RNC_PLAN_MODEL 0xFFFFFFFFu
rnc_status rnc_model_plan_row(const rnc_model *model, uint32_t layer, uint32_t op,
                              uint32_t precision, size_t batch, uint32_t input, int sums,
                              size_t *row);

/* q8 product with the GEMV kernel of exactly `isa` (RNC_E_ISA if that table row is missing or
 * the CPU lacks the ISA; the CPU is queried on every call, which costs tens of microseconds in
 * a VM: time rnc_step for latencies). packed: the q8 packed layout (docs/rnc-format.md) of an
 * Rp x Kp int8 matrix (Rp multiple of 16, Kp multiple of 4 and <= 131072, values in
 * [-127, 127]); xq: batch x Kp int8 in [-127, 127]; acc: batch x Rp int32 = exact
 * sum_k W[r,k] * xq[b,k]. */
rnc_status rnc_kernel_q8_gemv(rnc_isa isa, const int8_t *packed, size_t rp, size_t kp,
                              const int8_t *xq, size_t batch, int32_t *acc);
/* f32 product: packed f32 layout of an Rp x K matrix (Rp multiple of 16); x: batch x K;
 * y: batch x Rp. */
rnc_status rnc_kernel_f32_gemv(rnc_isa isa, const float *packed, size_t rp, size_t k,
                               const float *x, size_t batch, float *y);
/* The activation quantisation of docs/q8-contract.md: q[0..n) int8 and the scale s. static_scale > 0
 * uses that scale (inv = 1.0f / static_scale); 0 = dynamic. RNC_E_VALUE on NaN/Inf. */
rnc_status rnc_quantize_q8(const float *v, size_t n, float static_scale, int8_t *q, float *scale);
/* The fast activations used by every kernel (max error in docs/c-api.md). */
rnc_status rnc_fast_tanh(const float *x, size_t n, float *y);
rnc_status rnc_fast_sigmoid(const float *x, size_t n, float *y);
/* CRC32 (IEEE 802.3, zlib's) of a buffer, as stored in .rnc files. */
rnc_status rnc_crc32(const void *data, size_t len, uint32_t *crc);

#ifdef __cplusplus
}
#endif
#endif /* RNNCORE_H */
