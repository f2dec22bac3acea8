/* The kernel list: every ISA entry point the engine calls, one line each. It generates the
 * kernels' declarations (internal.h), the rows of the kernel table (kernel_table.c), and with
 * them the C test loop (tests/test_main.c runs every row this CPU supports against its _generic
 * twin) and the Python property tests and benchmarks (rnc_kernel_info, rnncore._engine.kernels()).
 *
 *   X(op, precision, function, isa, input, flags, min_batch, max_batch)
 *
 * op/precision: RNC_OP_<op>, RNC_<precision>. Names spell datatype, op, strategy and ISA:
 * rnc_<q8|f32>_<op>[_<strategy>]_<isa>. input: what the row serves (RNC_IN_ANY, RNC_IN_X: the
 * input vector given, RNC_IN_GI: its projection given). flags: RNC_K_SUMS (needs W_hh's kernel
 * sums, stored in v2 files), RNC_K_NO_GRU_RB (not the GRU r*h form). min_batch..max_batch: the batch rows
 * (cells) or columns (products) the row serves, 0 = unbounded. Within an ISA the first matching
 * row wins (specialised strategies before the general one); an ISA without a matching row uses
 * its parent's (kernel_table.c: rnc__isa_parent). Every op has a generic row serving everything.
 */
#ifndef RNC_KERNEL_LIST_H
#define RNC_KERNEL_LIST_H

#define RNC_KERNELS_CELLS(X, sfx, isa)                                                            \
    X(RNN_STEP, Q8, rnc_q8_rnn_step_##sfx, isa, RNC_IN_ANY, 0, 1, 0)                              \
    X(GRU_STEP, Q8, rnc_q8_gru_step_##sfx, isa, RNC_IN_ANY, 0, 1, 0)                              \
    X(LSTM_STEP, Q8, rnc_q8_lstm_step_##sfx, isa, RNC_IN_ANY, 0, 1, 0)                            \
    X(RNN_STEP, F32, rnc_f32_rnn_step_##sfx, isa, RNC_IN_ANY, 0, 1, 0)                            \
    X(GRU_STEP, F32, rnc_f32_gru_step_##sfx, isa, RNC_IN_ANY, 0, 1, 0)                            \
    X(LSTM_STEP, F32, rnc_f32_lstm_step_##sfx, isa, RNC_IN_ANY, 0, 1, 0)

/* Block-sparse q8 weights (kernels/q8_sparse_<isa>.c, q8_sparse.h): the product (the matrix an
 * rnc_sparse_q8) and the cells of layers with block-sparse weights. */
#if defined(RNC_NO_SPARSE) /* a build without these kernels (and the loader refuses such files) */
#define RNC_KERNELS_SPARSE(X, sfx, isa)
#else
#define RNC_KERNELS_SPARSE(X, sfx, isa)                                                           \
    X(SPGEMV, Q8, rnc_q8_gemm_sparse_##sfx, isa, RNC_IN_ANY, 0, 1, 0)                             \
    X(RNN_STEP_SPARSE, Q8, rnc_q8_rnn_step_sparse_##sfx, isa, RNC_IN_ANY, 0, 1, 0)                \
    X(GRU_STEP_SPARSE, Q8, rnc_q8_gru_step_sparse_##sfx, isa, RNC_IN_ANY, 0, 1, 0)                \
    X(LSTM_STEP_SPARSE, Q8, rnc_q8_lstm_step_sparse_##sfx, isa, RNC_IN_ANY, 0, 1, 0)
#endif

/* The gate-shared block-sparse layout (kernels/q8_spshared_<isa>.c, q8_sparse.h): the product
 * (the matrix an rnc_sparse_q8 in any layout) and the GRU/LSTM cells of layers with a gate-shared
 * matrix. Rows: generic, avx2 (avx512 and avxvnni run it as their parent's), avx512vnni (amx
 * runs it), neon (aarch64 and armv7) and neondot. */
#if defined(RNC_NO_SPARSE)
#define RNC_KERNELS_SPSHARED(X, sfx, isa)
#else
#define RNC_KERNELS_SPSHARED(X, sfx, isa)                                                         \
    X(SPGEMV_SHARED, Q8, rnc_q8_gemm_spshared_##sfx, isa, RNC_IN_ANY, 0, 1, 0)                    \
    X(GRU_STEP_SHARED, Q8, rnc_q8_gru_step_spshared_##sfx, isa, RNC_IN_ANY, 0, 1, 0)              \
    X(LSTM_STEP_SHARED, Q8, rnc_q8_lstm_step_spshared_##sfx, isa, RNC_IN_ANY, 0, 1, 0)
#endif

/* q4 weights (kernels/q4_<isa>.c, q4.h): the int4 product (packed nibbles, exact int32 sums with
 * q8 activations) and the q8 cell template over it (the q8 quantiser and epilogue) */
#if defined(RNC_NO_Q4) /* a build without these kernels (and the loader refuses such files) */
#define RNC_KERNELS_Q4(X, sfx, isa)
#else
#define RNC_KERNELS_Q4(X, sfx, isa)                                                               \
    X(GEMV, Q4, rnc_q4_gemm_##sfx, isa, RNC_IN_ANY, 0, 1, 0)                                      \
    X(RNN_STEP, Q4, rnc_q4_rnn_step_##sfx, isa, RNC_IN_ANY, 0, 1, 0)                              \
    X(GRU_STEP, Q4, rnc_q4_gru_step_##sfx, isa, RNC_IN_ANY, 0, 1, 0)                              \
    X(LSTM_STEP, Q4, rnc_q4_lstm_step_##sfx, isa, RNC_IN_ANY, 0, 1, 0)
#endif

/* a q8 frame_conv's 16 x 16 product (kernels/q16_<isa>.c; docs/q8-contract.md): generic, avx2
 * (avxvnni runs it), avx512 and avx512vnni (the codes split in bytes, int32 sums: q16_avx512.h;
 * amx runs avx512vnni's) and aarch64 neon (neondot runs it; armv7 the generic). A build without them (-DRNC_NO_Q16, the dense deploy build) refuses
 * such records. */
#if defined(RNC_NO_Q16)
#define RNC_KERNELS_Q16(X, sfx, isa)
#else
#define RNC_KERNELS_Q16(X, sfx, isa) X(GEMM_Q16, Q8, rnc_q16_gemm_##sfx, isa, RNC_IN_ANY, 0, 1, 0)
#endif

/* fully-integer models (RNC_INT8, precision 3 files): the integer products and the step of
 * csrc/src/int/ (s8_matvec_generic.c, int_cells.c: the very code the Cortex-M builds run, compiled
 * in through kernels/int8_generic.c), one step row for every cell kind and every batch */
#if defined(RNC_NO_INT) /* a build without them (and the loader refuses such files) */
#define RNC_KERNELS_INT8(X)
#else
#define RNC_KERNELS_INT8(X)                                                                       \
    X(S8_MATVEC, INT8, rnc_s8_matvec_generic, RNC_ISA_GENERIC, RNC_IN_ANY, 0, 1, 0)               \
    X(INT_STEP, INT8, rnc_int8_step_generic, RNC_ISA_GENERIC, RNC_IN_ANY, 0, 1, 0)
#endif

/* log_mel's real FFT (kernels/f32_fft_generic.c; fft_avx2.c, fft_avx512.c, fft_neon.c: the same
 * bits); a build without it (-DRNC_NO_FFT, the dense deploy build) runs log_mel by the tables'
 * product. NEON's row is aarch64's only (armv7 NEON float arithmetic is not IEEE). */
#if defined(RNC_NO_FFT)
#define RNC_KERNELS_FFT(X)
#define RNC_KERNELS_FFT_AVX2(X)
#define RNC_KERNELS_FFT_AVX512(X)
#define RNC_KERNELS_FFT_NEON(X)
#else
#define RNC_KERNELS_FFT(X) X(RFFT_POWER, F32, rnc_f32_rfft_power_generic, RNC_ISA_GENERIC, RNC_IN_ANY, 0, 1, 0)
#define RNC_KERNELS_FFT_AVX2(X) X(RFFT_POWER, F32, rnc_f32_rfft_power_avx2, RNC_ISA_AVX2, RNC_IN_ANY, 0, 1, 0)
#define RNC_KERNELS_FFT_AVX512(X) X(RFFT_POWER, F32, rnc_f32_rfft_power_avx512, RNC_ISA_AVX512, RNC_IN_ANY, 0, 1, 0)
#if defined(__aarch64__)
#define RNC_KERNELS_FFT_NEON(X) X(RFFT_POWER, F32, rnc_f32_rfft_power_neon, RNC_ISA_NEON, RNC_IN_ANY, 0, 1, 0)
#else
#define RNC_KERNELS_FFT_NEON(X)
#endif
#endif

/* portable C (kernels/q8_gemm_generic.c, f32_gemm_generic.c, cells_generic.c, util.c,
 * f32_fft_generic.c): the twin of every row */
#define RNC_KERNELS_GENERIC(X)                                                                    \
    X(GEMV, Q8, rnc_q8_gemm_generic, RNC_ISA_GENERIC, RNC_IN_ANY, 0, 1, 0)                        \
    X(GEMV, F32, rnc_f32_gemm_generic, RNC_ISA_GENERIC, RNC_IN_ANY, 0, 1, 0)                      \
    X(QUANTIZE, Q8, rnc_q8_quantize_generic, RNC_ISA_GENERIC, RNC_IN_ANY, 0, 1, 0)                \
    X(GEMM_DEQ, Q8, rnc_q8_gemm_deq_generic, RNC_ISA_GENERIC, RNC_IN_ANY, 0, 1, 0)                \
    RNC_KERNELS_FFT(X)                                                                            \
    RNC_KERNELS_CELLS(X, generic, RNC_ISA_GENERIC)                                                \
    RNC_KERNELS_SPARSE(X, generic, RNC_ISA_GENERIC)                                               \
    RNC_KERNELS_SPSHARED(X, generic, RNC_ISA_GENERIC)                                             \
    RNC_KERNELS_Q4(X, generic, RNC_ISA_GENERIC)                                                   \
    RNC_KERNELS_Q16(X, generic, RNC_ISA_GENERIC)                                                  \
    RNC_KERNELS_INT8(X)

#if defined(__x86_64__) || defined(_M_X64)
/* AVX2 + FMA (q8_gemm_avx2.c, f32_gemm_avx2.c, cells_avx2.c, fft_avx2.c). q8 cell strategies (cells_avx2.c):
 *   small: whole-sequence mode at one row, per 16-unit block with all gate accumulators in
 *          registers and the previous block's update issued after its products (at 2-3 rows the
 *          template's GEMM, sharing each weight load across the rows, is ahead: T = 100, GRU
 *          H = 128, batch 3 409 -> 425 us row by row);
 *   b1:    the same per-block kernel for one row with its quantised input (rnc_step);
 *   (no suffix): the cell template (two GEMMs, the fused dequantisation + update), every batch. */
#define RNC_KERNELS_AVX2_CELL(X, op, cell)                                                        \
    X(op, Q8, rnc_q8_##cell##_step_small_avx2, RNC_ISA_AVX2, RNC_IN_GI, RNC_K_NO_GRU_RB, 1, 1)    \
    X(op, Q8, rnc_q8_##cell##_step_b1_avx2, RNC_ISA_AVX2, RNC_IN_X, RNC_K_NO_GRU_RB, 1, 1)
#define RNC_KERNELS_AVX2(X)                                                                       \
    RNC_KERNELS_FFT_AVX2(X)                                                                       \
    X(GEMV, Q8, rnc_q8_gemm_avx2, RNC_ISA_AVX2, RNC_IN_ANY, 0, 1, 0)                              \
    X(GEMV, F32, rnc_f32_gemm_avx2, RNC_ISA_AVX2, RNC_IN_ANY, 0, 1, 0)                            \
    X(QUANTIZE, Q8, rnc_q8_quantize_avx2, RNC_ISA_AVX2, RNC_IN_ANY, 0, 1, 0)                      \
    X(GEMM_DEQ, Q8, rnc_q8_gemm_deq_avx2, RNC_ISA_AVX2, RNC_IN_ANY, 0, 1, 0)                      \
    RNC_KERNELS_AVX2_CELL(X, RNN_STEP, rnn)                                                       \
    RNC_KERNELS_AVX2_CELL(X, GRU_STEP, gru)                                                       \
    RNC_KERNELS_AVX2_CELL(X, LSTM_STEP, lstm)                                                     \
    RNC_KERNELS_CELLS(X, avx2, RNC_ISA_AVX2)                                                      \
    RNC_KERNELS_SPARSE(X, avx2, RNC_ISA_AVX2)                                                     \
    RNC_KERNELS_SPSHARED(X, avx2, RNC_ISA_AVX2)                                                   \
    RNC_KERNELS_Q4(X, avx2, RNC_ISA_AVX2)                                                         \
    RNC_KERNELS_Q16(X, avx2, RNC_ISA_AVX2)
/* AVX-512 F/BW/VL/DQ (gemm_avx512.c, cells_avx512.c, fft_avx512.c, q16_avx512.c) */
#define RNC_KERNELS_AVX512(X)                                                                     \
    RNC_KERNELS_FFT_AVX512(X)                                                                     \
    X(GEMV, Q8, rnc_q8_gemm_avx512, RNC_ISA_AVX512, RNC_IN_ANY, 0, 1, 0)                          \
    X(GEMV, F32, rnc_f32_gemm_avx512, RNC_ISA_AVX512, RNC_IN_ANY, 0, 1, 0)                        \
    X(QUANTIZE, Q8, rnc_q8_quantize_avx512, RNC_ISA_AVX512, RNC_IN_ANY, 0, 1, 0)                  \
    X(GEMM_DEQ, Q8, rnc_q8_gemm_deq_avx512, RNC_ISA_AVX512, RNC_IN_ANY, 0, 1, 0)                  \
    RNC_KERNELS_CELLS(X, avx512, RNC_ISA_AVX512)                                                  \
    RNC_KERNELS_Q16(X, avx512, RNC_ISA_AVX512)
/* AVX-512 VNNI (q8_gemm_avx512vnni.c, cells_avx512vnni.c); f32 and the quantiser are AVX-512F's.
 * q8 cell strategies, fastest first (measured on Zen 4; cells_avx512vnni.c):
 *   multi: whole-sequence mode at 2-3 rows, each W_hh vector loaded once for all rows, the
 *          accumulators starting from -128 * W_hh's kernel sums (precomputed in the file);
 *   small: whole-sequence mode below 4 rows, per 16-unit block with the epilogue interleaved;
 *   b1_sums: the same per-block kernel for one row with its quantised input (rnc_step), W_hh's
 *          product with the offset trick from its kernel sums (one instruction per weight vector);
 *   b1:    the same without kernel sums (v1 files), W_hh's product with the sign trick;
 *   fused: 16 rows and more with the input given, each unit block's weights in L1 for all rows;
 *          fused_sums: the same, W_hh's offset correction from its kernel sums (v2 files);
 *   (no suffix): the cell template (two GEMMs, dequantisation, update), every batch. */
#define RNC_KERNELS_AVX512VNNI_CELL(X, op, cell)                                                  \
    X(op, Q8, rnc_q8_##cell##_step_multi_avx512vnni, RNC_ISA_AVX512VNNI, RNC_IN_GI,               \
      RNC_K_SUMS | RNC_K_NO_GRU_RB, 2, 3)                                                         \
    X(op, Q8, rnc_q8_##cell##_step_small_avx512vnni, RNC_ISA_AVX512VNNI, RNC_IN_GI,               \
      RNC_K_NO_GRU_RB, 1, 3)                                                                      \
    X(op, Q8, rnc_q8_##cell##_step_b1_sums_avx512vnni, RNC_ISA_AVX512VNNI, RNC_IN_X,              \
      RNC_K_SUMS | RNC_K_NO_GRU_RB, 1, 1)                                                         \
    X(op, Q8, rnc_q8_##cell##_step_b1_avx512vnni, RNC_ISA_AVX512VNNI, RNC_IN_X, RNC_K_NO_GRU_RB,  \
      1, 1)                                                                                       \
    X(op, Q8, rnc_q8_##cell##_step_fused_sums_avx512vnni, RNC_ISA_AVX512VNNI, RNC_IN_X,           \
      RNC_K_SUMS | RNC_K_NO_GRU_RB, 16, 0)                                                        \
    X(op, Q8, rnc_q8_##cell##_step_fused_avx512vnni, RNC_ISA_AVX512VNNI, RNC_IN_X,                \
      RNC_K_NO_GRU_RB, 16, 0)                                                                     \
    X(op, Q8, rnc_q8_##cell##_step_avx512vnni, RNC_ISA_AVX512VNNI, RNC_IN_ANY, 0, 1, 0)
#define RNC_KERNELS_AVX512VNNI(X)                                                                 \
    X(GEMV, Q8, rnc_q8_gemm_avx512vnni, RNC_ISA_AVX512VNNI, RNC_IN_ANY, 0, 1, 0)                  \
    X(GEMM_DEQ, Q8, rnc_q8_gemm_deq_avx512vnni, RNC_ISA_AVX512VNNI, RNC_IN_ANY, 0, 1, 0)          \
    RNC_KERNELS_AVX512VNNI_CELL(X, RNN_STEP, rnn)                                                 \
    RNC_KERNELS_AVX512VNNI_CELL(X, GRU_STEP, gru)                                                 \
    RNC_KERNELS_AVX512VNNI_CELL(X, LSTM_STEP, lstm)                                               \
    X(RNN_STEP, F32, rnc_f32_rnn_step_avx512vnni, RNC_ISA_AVX512VNNI, RNC_IN_ANY, 0, 1, 0)        \
    X(GRU_STEP, F32, rnc_f32_gru_step_avx512vnni, RNC_ISA_AVX512VNNI, RNC_IN_ANY, 0, 1, 0)        \
    X(LSTM_STEP, F32, rnc_f32_lstm_step_avx512vnni, RNC_ISA_AVX512VNNI, RNC_IN_ANY, 0, 1, 0)      \
    RNC_KERNELS_SPARSE(X, avx512vnni, RNC_ISA_AVX512VNNI)                                         \
    RNC_KERNELS_SPSHARED(X, avx512vnni, RNC_ISA_AVX512VNNI)                                       \
    RNC_KERNELS_Q4(X, avx512vnni, RNC_ISA_AVX512VNNI)                                             \
    RNC_KERNELS_Q16(X, avx512vnni, RNC_ISA_AVX512VNNI)
/* AVX-VNNI (q8_gemm_avxvnni.c, cells_avxvnni.c): q8 products with VEX vpdpbusd; f32 and the
 * quantiser are AVX2's. Left out when the compiler lacks -mavxvnni (sources.mk). */
#if !defined(RNC_NO_X86_AVXVNNI)
#define RNC_KERNELS_AVXVNNI(X)                                                                    \
    X(GEMV, Q8, rnc_q8_gemm_avxvnni, RNC_ISA_AVXVNNI, RNC_IN_ANY, 0, 1, 0)                        \
    X(GEMM_DEQ, Q8, rnc_q8_gemm_deq_avxvnni, RNC_ISA_AVXVNNI, RNC_IN_ANY, 0, 1, 0)                \
    RNC_KERNELS_CELLS(X, avxvnni, RNC_ISA_AVXVNNI)                                                \
    RNC_KERNELS_SPARSE(X, avxvnni, RNC_ISA_AVXVNNI)
#else
#define RNC_KERNELS_AVXVNNI(X)
#endif
/* AMX-INT8 (q8_gemm_amx.c, cells_amx.c): tile products from 16 columns and 64 inputs on (sequence
 * projections, heads) and q8 cells whose batch products use tiles (16 rows on, layers of
 * RNC_AMX_MIN_HIDDEN units and more: rnc__layer_isa); below that, and every f32 op, the parent's
 * (avx512vnni). Left out when the compiler lacks -mamx-tile/-mamx-int8. */
#if !defined(RNC_NO_X86_AMX)
#define RNC_KERNELS_AMX(X)                                                                        \
    X(GEMV, Q8, rnc_q8_gemm_amx, RNC_ISA_AMX, RNC_IN_ANY, 0, 16, 0)                               \
    X(GEMM_DEQ, Q8, rnc_q8_gemm_deq_amx, RNC_ISA_AMX, RNC_IN_ANY, 0, 16, 0)                       \
    X(RNN_STEP, Q8, rnc_q8_rnn_step_amx, RNC_ISA_AMX, RNC_IN_ANY, 0, 16, 0)                       \
    X(GRU_STEP, Q8, rnc_q8_gru_step_amx, RNC_ISA_AMX, RNC_IN_ANY, 0, 16, 0)                       \
    X(LSTM_STEP, Q8, rnc_q8_lstm_step_amx, RNC_ISA_AMX, RNC_IN_ANY, 0, 16, 0)
#else
#define RNC_KERNELS_AMX(X)
#endif
#define RNC_KERNELS_ARCH(X)                                                                       \
    RNC_KERNELS_AVX2(X) RNC_KERNELS_AVX512(X) RNC_KERNELS_AVX512VNNI(X) RNC_KERNELS_AVXVNNI(X)    \
    RNC_KERNELS_AMX(X)

#elif defined(__arm__) || defined(__aarch64__)
/* ARM NEON (gemm_neon.c, cells_neon.c, q8_sparse_neon.c, q8_spshared_neon.c, q4_neon.c, fft_neon.c); the quantiser is NEON's on aarch64 (epilogue_neon.h), the
 * portable one on armv7 (its NEON float arithmetic is not IEEE) */
#if defined(__aarch64__)
#define RNC_KERNELS_NEON_QUANTIZE(X)                                                              \
    X(QUANTIZE, Q8, rnc_q8_quantize_neon, RNC_ISA_NEON, RNC_IN_ANY, 0, 1, 0)
#else
#define RNC_KERNELS_NEON_QUANTIZE(X)
#endif
#if defined(__aarch64__)
#define RNC_KERNELS_Q16_NEON(X) RNC_KERNELS_Q16(X, neon, RNC_ISA_NEON)
#else
#define RNC_KERNELS_Q16_NEON(X)
#endif
#define RNC_KERNELS_NEON(X)                                                                       \
    RNC_KERNELS_NEON_QUANTIZE(X)                                                                  \
    RNC_KERNELS_Q16_NEON(X)                                                                       \
    RNC_KERNELS_FFT_NEON(X)                                                                       \
    X(GEMV, Q8, rnc_q8_gemm_neon, RNC_ISA_NEON, RNC_IN_ANY, 0, 1, 0)                              \
    X(GEMV, F32, rnc_f32_gemm_neon, RNC_ISA_NEON, RNC_IN_ANY, 0, 1, 0)                            \
    X(GEMM_DEQ, Q8, rnc_q8_gemm_deq_neon, RNC_ISA_NEON, RNC_IN_ANY, 0, 1, 0)                      \
    RNC_KERNELS_CELLS(X, neon, RNC_ISA_NEON)                                                      \
    RNC_KERNELS_SPARSE(X, neon, RNC_ISA_NEON)                                                     \
    RNC_KERNELS_SPSHARED(X, neon, RNC_ISA_NEON)                                                   \
    RNC_KERNELS_Q4(X, neon, RNC_ISA_NEON)
/* aarch64 dot product (q8_gemm_neondot.c, cells_neondot.c); f32 products are NEON's */
#if defined(__aarch64__)
#define RNC_KERNELS_NEONDOT(X)                                                                    \
    X(GEMV, Q8, rnc_q8_gemm_neondot, RNC_ISA_NEONDOT, RNC_IN_ANY, 0, 1, 0)                        \
    X(GEMM_DEQ, Q8, rnc_q8_gemm_deq_neondot, RNC_ISA_NEONDOT, RNC_IN_ANY, 0, 1, 0)                \
    RNC_KERNELS_CELLS(X, neondot, RNC_ISA_NEONDOT)                                                \
    RNC_KERNELS_SPARSE(X, neondot, RNC_ISA_NEONDOT)                                               \
    RNC_KERNELS_SPSHARED(X, neondot, RNC_ISA_NEONDOT)                                             \
    RNC_KERNELS_Q4(X, neondot, RNC_ISA_NEONDOT)
#else
#define RNC_KERNELS_NEONDOT(X)
#endif
#define RNC_KERNELS_ARCH(X) RNC_KERNELS_NEON(X) RNC_KERNELS_NEONDOT(X)

#else
#define RNC_KERNELS_ARCH(X)
#endif

#define RNC_KERNEL_LIST(X) RNC_KERNELS_GENERIC(X) RNC_KERNELS_ARCH(X)

#endif
