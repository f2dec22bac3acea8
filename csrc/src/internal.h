/* Internal declarations of the C core: kernel signatures, the kernel table, shared helpers.
 *
 * Kernel contract (every ISA implements the same functions bit-compatibly):
 *
 *   GEMM (q8):  Acc[n*ldacc + r] = sum_{k<K} Wq[r,k] * Q[n*ldq + k]   for r < R, n < N (exact int32)
 *   GEMM (f32): Y[n*ldy + r]     = sum_{k<K} W[r,k]  * X[n*ldx + k]
 *       Wp is the packed layout (docs/rnc-format.md) of a matrix with round16(R') >= R rows
 *       and K inputs (q8: the packed K is round4(K)); only rows < R are written and only
 *       inputs < K are read.
 *   CELL: one fused step of one layer direction for a batch (rnc_cell_args): the products of
 *       W_ih x (unless gi is given) and W_hh h, the float32 epilogue, the state update.
 *
 * Adding an ISA: write its files (one ISA per file, compiled with only its flags), add its lines
 * to kernel_list.h; ops missing for an ISA fall back along rnc__isa_parent() (docs/c-api.md).
 */
#ifndef RNC_INTERNAL_H
#define RNC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "rnncore.h"

#if defined(__x86_64__) || defined(_M_X64)
#define RNC_X86 1
#else
#define RNC_X86 0
#endif

/* A residual whose span crosses recurrent records (y = x + GRU(x), docs/rnc-format.md "residual").
 * A build without it (-DRNC_NO_RESID_RNN, the dense deploy build) refuses such files as a sequence
 * it does not run, and its executor has no skip rows. */
#if defined(RNC_NO_RESID_RNN)
#define XRES_ON 0
#else
#define XRES_ON 1
#endif

/* The chunk records (concat, positions: Silero VAD v4, docs/rnc-format.md); a build without them
 * (-DRNC_NO_CHUNK, the dense deploy build) refuses their kinds as unknown. */
#if defined(RNC_NO_CHUNK)
#define CHUNK_ON 0
#else
#define CHUNK_ON 1
#endif

/* Front-end records after an embedding (conv_time, pool_time, per-step records on the looked-up
 * rows: Keras imdb_cnn_lstm, docs/rnc-format.md); a build without them (-DRNC_NO_EMB_FRONT, the
 * dense deploy build) refuses such a file as a sequence it does not run ("cannot come after an
 * embedding"), and its executor gathers the ids for the first recurrent layer only. */
#if defined(RNC_NO_EMB_FRONT)
#define EMB_FRONT_ON 0
#else
#define EMB_FRONT_ON 1
#endif

#define RNC_Q8_MAX_K 131072u /* 127*127*131072 < 2^31: int32 accumulators cannot overflow */

typedef void (*rnc_gemm_q8_fn)(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                               int32_t *Acc, int ldacc);
/* The q4 product (kernels/q4.h) has the q8 product's signature: Wp is the packed q4 matrix. */
/* The 16 x 16 product of a frame_conv (kernels/q16_<isa>.c; docs/q8-contract.md):
 *   Acc[n*ldacc + r] = sum_{k<K} W[r*Kp + k] * Q[n*ldq + k]   for r < R, n < N (exact int64)
 * W: int16 rows of Kp = round16(K) inputs, values in -32767..32767; W and every column of Q are
 * zero at inputs K..Kp-1 (rows may read them); ldq a multiple of 16. */
typedef void (*rnc_gemm_q16_fn)(const int16_t *W, int R, int K, int N, const int16_t *Q, int ldq,
                                int64_t *Acc, int ldacc);
typedef void (*rnc_gemm_f32_fn)(const float *Wp, int R, int K, int N, const float *X, int ldx,
                                float *Y, int ldy);
/* q8 activation quantisation of one row (docs/q8-contract.md): q[0..npad) (zero past n) and its
 * scale. static_scale > 0: that scale, with static_inv = 1.0f / static_scale (computed once, at
 * load: rnc_layer.x_inv, h_inv; 0 = compute it here), no scan; else dynamic (max-abs). Total:
 * NaN is treated as 0, the max ignores NaN. */
typedef void (*rnc_quantize_fn)(const float *v, size_t n, size_t npad, float static_scale,
                                float static_inv, int8_t *q, float *scale);
/* The q8 projection with its dequantisation, for n < N, r < R:
 *   Y[n*ldy + r] = (float)acc[n][r] * (sx[n] * sw[r]) + bias[r],  acc = exact int32 W Q
 * in this float32 order (bit-identical on every row of the table). */
typedef void (*rnc_gemm_deq_fn)(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                                const float *sx, const float *sw, const float *bias, float *Y,
                                int ldy);
/* sums[r] = sum_k W[r,k] for r < round16(R) of a packed q8 matrix of K inputs: its "kernel sums"
 * (the unsigned-offset products dpbusd(q ^ 0x80, W) = W q + 128 sums start from -128 sums).
 * The writer stores them in v2 files (docs/rnc-format.md), the loader checks them with this. */
void rnc_q8_rowsum_generic(const int8_t *Wp, int R, int K, int32_t *sums);

/* model.c's cell_args_base sets every field by name (no memset): a new field must be set there */
typedef struct rnc_cell_args {
    uint32_t kind;          /* rnc_cell_kind */
    uint32_t reset_after;   /* GRU form */
    uint32_t batch, I, H, Hp, G;
    const void *w_ih, *w_hh;              /* packed (q8 int8 / f32 float); *_SPARSE rows: rnc_sparse_q8 */
    const float *s_ih, *s_hh;             /* q8 row scales */
    const float *b_ih, *b_hh;             /* G*Hp */
    float h_scale;                        /* q8 static scale of h (and r*h); 0 = dynamic */
    float h_inv;                          /* 1.0f / h_scale (0: dynamic, or computed per call) */
    /* input part: exactly one of (x | xq) and gi */
    const float *x; size_t ldx;           /* f32: B x I */
    const int8_t *xq; const float *sx; size_t ldxq; /* q8: B x round4(I), one scale per row */
    const float *gi; size_t ldgi;         /* precomputed W_ih x + b_ih (G*Hp per row) */
    float *h; float *c;                   /* B x H each (c: LSTM), updated in place */
    float *y; size_t ldy;                 /* optional copy of h' per row */
    const uint8_t *active;                /* NULL = every row; else rows with 0 are untouched */
    const int32_t *hh_sums;               /* W_hh's kernel sums, G*Hp (rows flagged RNC_K_SUMS) */
    void *work;                           /* >= rnc__cell_work_bytes() bytes, 64-aligned */
    uint32_t P;                           /* LSTM projection (variant cell only): h is P wide; 0 */
} rnc_cell_args;

typedef void (*rnc_cell_fn)(const rnc_cell_args *a);

/* The fully-integer step of one layer for a batch (RNC_OP_INT_STEP rows): each row b (active[b],
 * or every row when active is NULL) runs the cell's step (int/rnncore_int.h) on x8 + b*ldx with
 * its state h8 + b*H, s16 + b*H (s16 NULL for an RNN), the products through `matvec` (an
 * RNC_OP_S8_MATVEC row). The cell was checked at load (rnc_int_cell_check). */
#include "int/rnncore_int.h"
typedef struct rnc_int8_args {
    const rnc_int_cell *cell;
    rnc_s8_matvec_fn matvec;
    uint32_t batch;
    const void *x8; size_t ldx;           /* int8 (int16: the first layer of an int16-input model); ldx in bytes */
    int8_t *h8; int16_t *s16;
    const uint8_t *active;
    void *scratch; size_t scratch_bytes;  /* >= RNC_INT_SCRATCH_BYTES(G, H), 4-aligned */
} rnc_int8_args;
typedef void (*rnc_int8_step_fn)(const rnc_int8_args *a);

/* The cell with options (kernels/cells_variant.c): one direction's options and the plan's
 * product rows for B columns and for 1 (the GRU r*h product). */
typedef struct rnc_cell_variant {
    uint32_t q8, flags;                    /* precision; RNC_CELLOPT_* */
    float clip;
    const uint8_t *act;                    /* 3 activation slots, RNC_CELLACT_* */
    const float *alpha, *beta;             /* their parameters */
    const float *peep;                     /* LSTM peepholes 3 x H (p_i, p_f, p_o) or NULL */
    const void *w_hr;                      /* proj: this direction's packed W_hr (round16(P) x H) */
    const float *s_hr;                     /* q8: its row scales */
    /* layer norm (RNC_CELLOPT_LAYER_NORM): this direction's gains then shifts, 2 x G*H (ln_ih,
     * ln_hh) and 2 x H (ln_c, LSTM); NULL without */
    const float *ln_ih, *ln_hh, *ln_c;
    float ln_eps;
    uint32_t ln_per_gate;
    rnc_gemm_q8_fn gemm_q8, gemm_q8_1;
    rnc_gemm_f32_fn gemm_f32, gemm_f32_1;
    rnc_quantize_fn quantize;
} rnc_cell_variant;
void rnc__cell_variant(const rnc_cell_args *a, const rnc_cell_variant *v);
/* x[0..n) = act(x) in place for one RNC_CELLACT_* code with its alpha, beta (the cell options' and a
 * pointwise record's leakyrelu and elu: one formula) */
void rnc__cellact_vec(uint8_t code, float al, float be, float *x, uint32_t n);

/* The log_mel record's power spectrum by a real FFT (kernels/f32_fft_generic.c): p[k] = |X[k]|^power
 * for k <= m of the DFT X of the n = 2m samples window[i] x[i]; tw: rnc__fft_twiddles' table;
 * work: 4m floats. */
typedef struct rnc_fft_args {
    uint32_t m, nst, power;
    const uint8_t *radix;
    const float *tw, *window, *x;
    float *work, *p;
} rnc_fft_args;
typedef void (*rnc_rfft_fn)(const rnc_fft_args *a);
/* One pass of the complex FFT (f32_fft_generic.c): radix p over blocks of Ns outputs, in (ir, ii)
 * -> out (or_, oi), tw its twiddles (unread when Ns = 1). The driver rnc__rfft_power (window,
 * the passes through `pass`, the split into bins) is every ISA row's; a row brings its passes
 * and the vector parts of the window and the split, each lane the generic's operations. */
typedef void (*rnc_fft_pass_fn)(uint32_t p, uint32_t M, uint32_t Ns, const float *tw, const float *ir,
                                const float *ii, float *or_, float *oi);
void rnc__fft_pass(uint32_t p, uint32_t M, uint32_t Ns, const float *tw, const float *ir, const float *ii,
                   float *or_, float *oi);
/* the same pass from block `first` on (a multiple of Ns): a row's rest after its vector blocks */
void rnc__fft_pass_from(uint32_t p, uint32_t M, uint32_t Ns, uint32_t first, const float *tw, const float *ir,
                        const float *ii, float *or_, float *oi);
/* A row's vector part of the window (re[m], im[m] for m < its return) or of the split (bins k and
 * m - k for 0 < k < its return, from the last pass's re, im); the driver does the rest. */
typedef uint32_t (*rnc_fft_part_fn)(const rnc_fft_args *a, float *re, float *im);
void rnc__rfft_power(const rnc_fft_args *a, rnc_fft_pass_fn pass, rnc_fft_part_fn window, rnc_fft_part_fn split);
/* The plan of F (a log_mel record of n_fft n, its tables loaded): F->fft_m, fft_nst, fft_radix;
 * 0 (fft_m 0) when n is odd, n / 2 has a prime factor above 5, or the tables are not the DFT's. */
int rnc__fft_plan(rnc_front_op *F, uint32_t n);
size_t rnc__fft_tw_floats(const rnc_front_op *F); /* floats of its twiddle table (0 without FFT) */
void rnc__fft_twiddles(const rnc_front_op *F, float *tw); /* the table, from the file's tables */

/* What a row serves (rnc_kernel.input): any input, the input vector given (x or xq: rnc_step and
 * rnc_run's per-step mode), or its projection given (gi: rnc_run's whole-sequence mode). */
enum { RNC_IN_ANY = 0, RNC_IN_X = 1, RNC_IN_GI = 2 };
/* rnc_kernel.flags: RNC_K_SUMS needs rnc_cell_args.hh_sums; RNC_K_NO_GRU_RB does not serve
 * GRU reset_after = 0 (the r*h form). */
enum { RNC_K_SUMS = 1, RNC_K_NO_GRU_RB = 2 };

typedef struct rnc_kernel {
    const char *name;
    uint8_t op, precision, isa, input, flags;
    uint32_t min_batch, max_batch; /* rows (cells) or columns N (products) served; 0 = no bound */
    union {
        rnc_gemm_q8_fn gemm_q8;
        rnc_gemm_f32_fn gemm_f32;
        rnc_quantize_fn quantize;
        rnc_gemm_deq_fn gemm_deq;
        rnc_cell_fn cell;
        rnc_int8_step_fn int_step;
        rnc_s8_matvec_fn s8_matvec;
        rnc_rfft_fn rfft;
        rnc_gemm_q16_fn gemm_q16;
    } fn;
} rnc_kernel;

/* kernel_table.c */
extern const rnc_kernel rnc__kernels[];
extern const size_t rnc__kernel_count;
int rnc__isa_parent(int isa);                           /* -1 for generic */
int rnc__find_kernel(int op, int precision, int isa);   /* first row of exactly isa, or -1 */
/* The path whose rows serve the cells of a layer of `hidden` units when the model's path is isa:
 * AMX's batch cells only from RNC_AMX_MIN_HIDDEN units on, AVX-512 VNNI's below (measured on Intel
 * Xeons with AMX, 16 rows and more: the AMX cells lost 13-64 % at H = 32 and up to 24 % at H = 64
 * against AVX-512 VNNI's fused rows, and won 1.6-2.2x from H = 256; H = 128 is not measured). */
#if RNC_X86 && !defined(RNC_NO_X86_AMX)
#define RNC_AMX_MIN_HIDDEN 128u
int rnc__layer_isa(int isa, uint32_t hidden);
#else
#define rnc__layer_isa(isa, hidden) ((void)(hidden), (isa))
#endif
/* The row serving `batch` rows (cells) or columns (products) of input mode `input` (RNC_IN_X or
 * RNC_IN_GI), for a GRU of the r*h form when gru_rb, with W_hh's kernel sums available when sums:
 * the first matching row in table order along isa's fallback chain, or -1. */
int rnc__kernel_serves(const struct rnc_kernel *k, uint32_t batch, int input, int gru_rb, int sums);
int rnc__pick_kernel(int op, int precision, int isa, uint32_t batch, int input, int gru_rb,
                     int sums);

/* cpu.c */
int rnc__cpu_supports(int isa);
uint32_t rnc__cpu_isa_mask(void);

/* util.c: total functions (never fail): NaN is treated as 0, the max ignores NaN */
void rnc_q8_quantize_generic(const float *v, size_t n, size_t npad, float static_scale,
                             float static_inv, int8_t *q, float *scale);
int rnc__all_finite(const float *v, size_t n);

/* Round to nearest, ties to even, for |p| < 2^22 (the quantisers' clamped products, 127 or 32767):
 * adding and subtracting 1.5*2^23 leaves exactly the rounded integer in IEEE float32 (no
 * contraction, no fast-math). */
static inline float rnc_round_even(float p)
{
    const float magic = 12582912.0f;
    const float t = p + magic;
    return t - magic;
}

static inline uint64_t r16(uint64_t n) { return (n + 15) & ~(uint64_t)15; }
static inline uint64_t r4(uint64_t n) { return (n + 3) & ~(uint64_t)3; }
static inline uint64_t r8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

/* return the status of x unless it is RNC_OK */
#define TRY(x)                                                                                    \
    do {                                                                                          \
        rnc_status st_ = (x);                                                                     \
        if (st_ != RNC_OK) return st_;                                                            \
    } while (0)

/* Output positions per product of a frame_conv (model.c): its scratch is RNC_FCONV_BLOCK windows
 * and their products, whatever the frame length. */
#define RNC_FCONV_BLOCK 16u

/* kernels/int8_generic.c (RNC_INT8 models): the cell of layer L as the integer step takes it, and
 * the state conversions of its batch rows b < B: the float state (h: B x H at h, c: B x H at c,
 * LSTM only) <-> the integers (h8, s16: B x H each). To the integers: h8 = sat8(rint(h / s_h) +
 * zp) (LSTM, RNN), s16 = sat16(rint(c 2^-cell_shift)) (LSTM), GRU s16 = sat16(rint(2^15 h)) and
 * h8 its image as a step makes it (NaN as 0); back: h = s_h (h8 - zp), c = 2^cell_shift s16,
 * GRU h = s16 / 2^15, each exact both ways. */
void rnc__int8_cell(const rnc_layer *L, rnc_int_cell *c);
/* q[i] = clamp(rint(x[i] / scale) + zp, -128, 127) in binary64 (rnncore.quant.integer.quantize_s8) */
void rnc__int8_quantize(const float *x, size_t n, double scale, int32_t zp, int8_t *q);
/* the model input as the first layer L's integers: int8, or int16 (quantize_s16) */
void rnc__int_quantize_input(const rnc_layer *L, const float *x, size_t n, void *q);
void rnc__int8_from_float(const rnc_int_cell *c, const rnc_layer *L, size_t B, const float *h,
                          const float *cst, int8_t *h8, int16_t *s16);
void rnc__int8_to_float(const rnc_int_cell *c, const rnc_layer *L, size_t B, const int8_t *h8,
                        const int16_t *s16, float *h, float *cst);

/* loader.c: validate the .rnc buffer b (len bytes) and point m's fields into it */
rnc_status rnc__load(rnc_model *m, const unsigned char *b, size_t len);

#define RNC_ALIGN_UP(n, a) (((n) + ((size_t)(a) - 1)) & ~((size_t)(a) - 1))

/* The cell kernels' scratch (rnc_cell_args.work), one layout for every ISA. */
typedef struct rnc_cell_work {
    size_t acc_i, acc_h, hq, sh, gi_f, gh_f, rh, rq, acc_n, total; /* byte offsets, total size */
} rnc_cell_work;

static inline rnc_cell_work rnc__cell_work(uint32_t G, uint32_t H, uint32_t batch)
{
    rnc_cell_work w;
    const size_t hp = RNC_ALIGN_UP((size_t)H, 16), kh = RNC_ALIGN_UP((size_t)H, 4);
    const size_t ghp = (size_t)G * hp, b = batch;
    size_t o = 0;
    w.acc_i = o; o += RNC_ALIGN_UP(b * ghp * 4, 64);
    w.acc_h = o; o += RNC_ALIGN_UP(b * ghp * 4, 64);
    w.hq = o;    o += RNC_ALIGN_UP(b * kh, 64);
    w.sh = o;    o += RNC_ALIGN_UP(b * 4, 64);
    w.gi_f = o;  o += RNC_ALIGN_UP(ghp * 4, 64);
    w.gh_f = o;  o += RNC_ALIGN_UP(ghp * 4, 64);
    w.rh = o;    o += RNC_ALIGN_UP(hp * 4, 64);
    w.rq = o;    o += RNC_ALIGN_UP(kh, 64);
    w.acc_n = o; o += RNC_ALIGN_UP(hp * 4, 64);
    w.total = o;
    return w;
}

/* The q8 cells' work areas in rnc_cell_args.work (rnc__cell_work's layout): the products'
 * accumulators, h's int8 codes and scales (hq, sh), the float pre-activations of one row
 * (gi_f, gh_f), r*h or the projection's input (rh) and its codes (rq), the one-column product
 * (acc_n). */
typedef struct rnc_q8_areas {
    int32_t *acc_i, *acc_h, *acc_n;
    int8_t *hq, *rq;
    float *sh, *gi_f, *gh_f, *rh;
} rnc_q8_areas;

static inline rnc_q8_areas rnc__q8_areas(const rnc_cell_args *a)
{
    const rnc_cell_work wl = rnc__cell_work(a->G, a->H, a->batch);
    unsigned char *w = (unsigned char *)a->work;
    rnc_q8_areas r;
    r.acc_i = (int32_t *)(w + wl.acc_i);
    r.acc_h = (int32_t *)(w + wl.acc_h);
    r.acc_n = (int32_t *)(w + wl.acc_n);
    r.hq = (int8_t *)(w + wl.hq);
    r.rq = (int8_t *)(w + wl.rq);
    r.sh = (float *)(w + wl.sh);
    r.gi_f = (float *)(w + wl.gi_f);
    r.gh_f = (float *)(w + wl.gh_f);
    r.rh = (float *)(w + wl.rh);
    return r;
}

/* Step 1 of a q8 cell: every batch row of h (hw floats wide) quantised into hq (round4(hw) codes
 * per row) with its scale in sh, h's static scale a->h_scale (0: dynamic). */
static inline void rnc__q8_quantize_h(const rnc_cell_args *a, rnc_quantize_fn quantize, uint32_t hw,
                                      int8_t *hq, float *sh)
{
    const size_t khw = RNC_ALIGN_UP((size_t)hw, 4);
    for (uint32_t b = 0; b < a->batch; ++b)
        quantize(a->h + (size_t)b * hw, hw, khw, a->h_scale, a->h_inv, hq + b * khw, &sh[b]);
}

/* Kernel prototypes: one per row of the kernel list (kernel_list.h). */
#include "kernel_list.h"
#define RNC_DECL_GEMV_Q8(f) void f(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq, int32_t *Acc, int ldacc);
#define RNC_DECL_GEMV_F32(f) void f(const float *Wp, int R, int K, int N, const float *X, int ldx, float *Y, int ldy);
#define RNC_DECL_QUANTIZE_Q8(f) void f(const float *v, size_t n, size_t npad, float static_scale, float static_inv, int8_t *q, float *scale);
#define RNC_DECL_GEMM_DEQ_Q8(f) void f(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq, const float *sx, const float *sw, const float *bias, float *Y, int ldy);
#define RNC_DECL_RNN_STEP_Q8(f) void f(const rnc_cell_args *a);
#define RNC_DECL_GRU_STEP_Q8(f) void f(const rnc_cell_args *a);
#define RNC_DECL_LSTM_STEP_Q8(f) void f(const rnc_cell_args *a);
#define RNC_DECL_RNN_STEP_F32(f) void f(const rnc_cell_args *a);
#define RNC_DECL_GRU_STEP_F32(f) void f(const rnc_cell_args *a);
#define RNC_DECL_LSTM_STEP_F32(f) void f(const rnc_cell_args *a);
#define RNC_DECL_SPGEMV_Q8(f) RNC_DECL_GEMV_Q8(f)
#define RNC_DECL_RNN_STEP_SPARSE_Q8(f) void f(const rnc_cell_args *a);
#define RNC_DECL_GRU_STEP_SPARSE_Q8(f) void f(const rnc_cell_args *a);
#define RNC_DECL_LSTM_STEP_SPARSE_Q8(f) void f(const rnc_cell_args *a);
#define RNC_DECL_SPGEMV_SHARED_Q8(f) RNC_DECL_GEMV_Q8(f)
#define RNC_DECL_GRU_STEP_SHARED_Q8(f) void f(const rnc_cell_args *a);
#define RNC_DECL_LSTM_STEP_SHARED_Q8(f) void f(const rnc_cell_args *a);
#define RNC_DECL_GEMV_Q4(f) RNC_DECL_GEMV_Q8(f)
#define RNC_DECL_RNN_STEP_Q4(f) void f(const rnc_cell_args *a);
#define RNC_DECL_GRU_STEP_Q4(f) void f(const rnc_cell_args *a);
#define RNC_DECL_LSTM_STEP_Q4(f) void f(const rnc_cell_args *a);
#define RNC_DECL_INT_STEP_INT8(f) void f(const rnc_int8_args *a);
#define RNC_DECL_S8_MATVEC_INT8(f) void f(int32_t *y, const int8_t *W, int ldw, const int32_t *bias, const int8_t *x, int rows, int cols);
#define RNC_DECL_RFFT_POWER_F32(f) void f(const rnc_fft_args *a);
#define RNC_DECL_GEMM_Q16_Q8(f) void f(const int16_t *W, int R, int K, int N, const int16_t *Q, int ldq, int64_t *Acc, int ldacc);
#define RNC_DECL_ROW(op, prec, f, isa, input, flags, bmin, bmax) RNC_DECL_##op##_##prec(f)
RNC_KERNEL_LIST(RNC_DECL_ROW)
#undef RNC_DECL_ROW

/* Every function of an ISA's file set that cell_template.h names (products and cells); the table
 * rows among them are declared above as well. */
#define RNC_DECLARE_ISA(sfx)                                                                      \
    void rnc_q8_gemm_##sfx(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,       \
                           int32_t *Acc, int ldacc);                                              \
    void rnc_f32_gemm_##sfx(const float *Wp, int R, int K, int N, const float *X, int ldx,         \
                            float *Y, int ldy);                                                   \
    void rnc_q8_rnn_step_##sfx(const rnc_cell_args *a);                                           \
    void rnc_q8_gru_step_##sfx(const rnc_cell_args *a);                                           \
    void rnc_q8_lstm_step_##sfx(const rnc_cell_args *a);                                          \
    void rnc_f32_rnn_step_##sfx(const rnc_cell_args *a);                                          \
    void rnc_f32_gru_step_##sfx(const rnc_cell_args *a);                                          \
    void rnc_f32_lstm_step_##sfx(const rnc_cell_args *a);

/* Helpers outside the table: the f32 products the VNNI paths' cell templates call (their
 * parents' products under the template's names). */
void rnc_f32_gemm_avx512vnni(const float *Wp, int R, int K, int N, const float *X, int ldx, float *Y,
                             int ldy);
void rnc_f32_gemm_avxvnni(const float *Wp, int R, int K, int N, const float *X, int ldx, float *Y,
                          int ldy);

#if RNC_X86
/* cpu.c: AMX is usable when cpuid reports AMX-TILE and AMX-INT8, the OS enables the tile state
 * in XCR0 (bits 17, 18) and grants this process the tile data (`request_permission` returns 1;
 * Linux: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)). Pure, for the tests. */
int rnc__amx_usable(uint32_t cpuid7_edx, uint64_t xcr0, int (*request_permission)(void));
int rnc__amx_request_permission(void);
#endif

#endif
