/* Fused q8 RNN/GRU/LSTM steps of the AMX path: the cell template with AMX products (q8_gemm_amx.c:
 * W_ih x and W_hh h of all rows as tiles of 16 rows x 16 weight rows) and the AVX-512 epilogue.
 * The rows serve batches of 16 rows and more (kernel_list.h): below, an A tile would be mostly
 * padding and the plan takes the AVX-512 VNNI cells (with their own small- and large-batch
 * strategies), which are faster there.
 * Same int32 accumulators (exact) and the same float32 epilogue as every ISA: q8 outputs equal
 * the generic kernel's bit for bit. The f32 cells of this path are avx512vnni's (the parent).
 *
 * Built twice: with this file's flags (sources.mk: X86_AMX_FLAGS) for the library, and with
 * -DRNC_AMX_EMULATE and AVX-512 flags only for tests/test_x86_amx.c, where the same template
 * calls the emulated tile kernel (rnc_q8_*_step_amx_emulated, every batch size); with
 * RNC_AMX_EMULATE_LIBRARY as well, under the real names (make test-amx-emulated). */
#include "../internal.h"
#include "isa_target.h"

#if defined(RNC_TARGET_X86_AMX) || (defined(RNC_AMX_EMULATE) && defined(__AVX512F__))
#include "epilogue_avx512.h"

#define RNC_CELL_UPDATE rnc_x86_cell_update_avx512
#define RNC_QUANTIZE_ROW rnc_x86_quantize_row_avx512
/* the template names its products rnc_{q8,f32}_gemm_<sfx>: point them at the AMX product and
 * at the AVX-512F f32 product (the f32 cells compiled here are unused: not in the table) */
#if defined(RNC_AMX_EMULATE) && !defined(RNC_AMX_EMULATE_LIBRARY)
void rnc_q8_gemm_amx_emulated(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                              int32_t *Acc, int ldacc);
#define rnc_f32_gemm_amx_emulated rnc_f32_gemm_avx512
#define RNC_SFX amx_emulated
#else
#define rnc_f32_gemm_amx rnc_f32_gemm_avx512
#define RNC_SFX amx
#endif
#include "cell_template.h"

#if !defined(RNC_AMX_EMULATE) || defined(RNC_AMX_EMULATE_LIBRARY)
/* The projection of 16 columns and more (below, the parent's: kernel_list.h) */
#include "gemm_deq.h"
RNC_DEFINE_Q8_GEMM_DEQ(amx)
#endif

#elif RNC_X86 && !defined(RNC_NO_X86_AMX) && !defined(RNC_AMX_EMULATE)
#error "cells_amx.c needs AMX-TILE, AMX-INT8 and AVX-512 VNNI (sources.mk X86_AMX_FLAGS) unless RNC_NO_X86_AMX"
#else
/* The AMX group left out (-DRNC_NO_X86_AMX) or another architecture: keep the unit non-empty. */
typedef int rnc_cells_amx_unused;
#endif
