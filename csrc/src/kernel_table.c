/* The kernel table: every kernel named by op, precision and ISA. It drives dispatch
 * (rnc_model_set_isa resolves one row per op and precision), the C tests (which run every row
 * this CPU supports against the generic one) and the benchmarks.
 *
 * Adding an ISA path = adding its files (one ISA per file, own flags, see sources.mk) and rows
 * here. An op without a row for an ISA falls back to the ISA's parent (rnc__isa_parent), so a
 * path may provide only its products (GEMM) and reuse everything else.
 */
#include <string.h>

#include "internal.h"

#define ROW_GEMM_Q8(f, isa) {#f, RNC_OP_GEMV, RNC_Q8, isa, {.gemm_q8 = f}}
#define ROW_GEMM_F32(f, isa) {#f, RNC_OP_GEMV, RNC_F32, isa, {.gemm_f32 = f}}
#define ROW_CELL(f, op, prec, isa) {#f, op, prec, isa, {.cell = f}}
#define ROWS_CELLS(sfx, isa)                                                                      \
    ROW_CELL(rnc_q8_rnn_step_##sfx, RNC_OP_RNN_STEP, RNC_Q8, isa),                                \
        ROW_CELL(rnc_q8_gru_step_##sfx, RNC_OP_GRU_STEP, RNC_Q8, isa),                            \
        ROW_CELL(rnc_q8_lstm_step_##sfx, RNC_OP_LSTM_STEP, RNC_Q8, isa),                          \
        ROW_CELL(rnc_f32_rnn_step_##sfx, RNC_OP_RNN_STEP, RNC_F32, isa),                          \
        ROW_CELL(rnc_f32_gru_step_##sfx, RNC_OP_GRU_STEP, RNC_F32, isa),                          \
        ROW_CELL(rnc_f32_lstm_step_##sfx, RNC_OP_LSTM_STEP, RNC_F32, isa)

#if defined(__arm__) || defined(__aarch64__)
RNC_DECLARE_ISA(neon)    /* kernels/gemv_neon.c, cells_neon.c */
#endif
#if defined(__aarch64__)
RNC_DECLARE_ISA(neondot) /* kernels/gemv_neondot.c, cells_neondot.c */
#endif

const rnc_kernel rnc__kernels[] = {
    ROW_GEMM_Q8(rnc_q8_gemm_generic, RNC_ISA_GENERIC),
    ROW_GEMM_F32(rnc_f32_gemm_generic, RNC_ISA_GENERIC),
    ROWS_CELLS(generic, RNC_ISA_GENERIC),
#if RNC_X86
    ROW_GEMM_Q8(rnc_q8_gemm_avx2, RNC_ISA_AVX2),
    ROW_GEMM_F32(rnc_f32_gemm_avx2, RNC_ISA_AVX2),
    ROWS_CELLS(avx2, RNC_ISA_AVX2),
    /* AVX-512 F/BW/VL/DQ, AVX-512 VNNI, AVX-VNNI (kernels/gemv_<isa>.c, cells_<isa>.c); the f32
     * products of the two VNNI paths are their parent's (AVX-512F, AVX2): no GEMV row. */
    ROW_GEMM_Q8(rnc_q8_gemm_avx512, RNC_ISA_AVX512),
    ROW_GEMM_F32(rnc_f32_gemm_avx512, RNC_ISA_AVX512),
    ROWS_CELLS(avx512, RNC_ISA_AVX512),
    ROW_GEMM_Q8(rnc_q8_gemm_avx512vnni, RNC_ISA_AVX512VNNI),
    ROWS_CELLS(avx512vnni, RNC_ISA_AVX512VNNI),
#if !defined(RNC_NO_X86_AVXVNNI) /* left out when the compiler lacks -mavxvnni (sources.mk) */
    ROW_GEMM_Q8(rnc_q8_gemm_avxvnni, RNC_ISA_AVXVNNI),
    ROWS_CELLS(avxvnni, RNC_ISA_AVXVNNI),
#endif
    /* AMX-INT8 (kernels/gemm_amx.c, cells_amx.c): the q8 product of many columns (sequence
     * projections, heads) and q8 cells whose batch products use tiles from 16 rows on; the f32
     * ops are the parents' (avx512vnni -> avx512) */
#if !defined(RNC_NO_X86_AMX) /* left out when the compiler lacks -mamx-tile/-mamx-int8 */
    ROW_GEMM_Q8(rnc_q8_gemm_amx, RNC_ISA_AMX),
    ROW_CELL(rnc_q8_rnn_step_amx, RNC_OP_RNN_STEP, RNC_Q8, RNC_ISA_AMX),
    ROW_CELL(rnc_q8_gru_step_amx, RNC_OP_GRU_STEP, RNC_Q8, RNC_ISA_AMX),
    ROW_CELL(rnc_q8_lstm_step_amx, RNC_OP_LSTM_STEP, RNC_Q8, RNC_ISA_AMX),
#endif
#endif
#if defined(__arm__) || defined(__aarch64__)
    /* ARM NEON; the dot-product path's f32 products are NEON's (no GEMV row) */
    ROW_GEMM_Q8(rnc_q8_gemm_neon, RNC_ISA_NEON),
    ROW_GEMM_F32(rnc_f32_gemm_neon, RNC_ISA_NEON),
    ROWS_CELLS(neon, RNC_ISA_NEON),
#endif
#if defined(__aarch64__)
    ROW_GEMM_Q8(rnc_q8_gemm_neondot, RNC_ISA_NEONDOT),
    ROWS_CELLS(neondot, RNC_ISA_NEONDOT),
#endif
};
const size_t rnc__kernel_count = sizeof(rnc__kernels) / sizeof(rnc__kernels[0]);

static const char *const isa_names[RNC_ISA_COUNT] = {
    "generic", "avx2", "avx512", "avx512vnni", "avxvnni", "amx", "neon", "neondot"};

int rnc__isa_parent(int isa)
{
    switch (isa) {
    case RNC_ISA_AVX2: return RNC_ISA_GENERIC;
    case RNC_ISA_AVX512: return RNC_ISA_AVX2;
    case RNC_ISA_AVX512VNNI: return RNC_ISA_AVX512;
    case RNC_ISA_AVXVNNI: return RNC_ISA_AVX2;
    case RNC_ISA_AMX: return RNC_ISA_AVX512VNNI;
    case RNC_ISA_NEON: return RNC_ISA_GENERIC;
    case RNC_ISA_NEONDOT: return RNC_ISA_NEON;
    default: return -1;
    }
}

int rnc__find_kernel(int op, int precision, int isa)
{
    for (size_t i = 0; i < rnc__kernel_count; ++i)
        if (rnc__kernels[i].op == op && rnc__kernels[i].precision == precision &&
            rnc__kernels[i].isa == isa)
            return (int)i;
    return -1;
}

int rnc__resolve_kernel(int op, int precision, int isa)
{
    for (; isa >= 0; isa = rnc__isa_parent(isa)) {
        const int k = rnc__find_kernel(op, precision, isa);
        if (k >= 0) return k;
    }
    return -1;
}

rnc_status rnc_kernel_count(size_t *count)
{
    if (!count) return RNC_E_ARG;
    *count = rnc__kernel_count;
    return RNC_OK;
}

rnc_status rnc_kernel_info(size_t index, rnc_kernel_desc *desc)
{
    if (!desc || index >= rnc__kernel_count) return RNC_E_ARG;
    desc->name = rnc__kernels[index].name;
    desc->op = rnc__kernels[index].op;
    desc->precision = rnc__kernels[index].precision;
    desc->isa = rnc__kernels[index].isa;
    return RNC_OK;
}

rnc_status rnc_isa_name(rnc_isa isa, const char **name)
{
    if (!name) return RNC_E_ARG;
    if ((unsigned)isa >= RNC_ISA_COUNT) return RNC_E_ISA;
    *name = isa_names[isa];
    return RNC_OK;
}

rnc_status rnc_isa_from_name(const char *name, rnc_isa *isa)
{
    if (!name || !isa) return RNC_E_ARG;
    for (int i = 0; i < RNC_ISA_COUNT; ++i)
        if (strcmp(name, isa_names[i]) == 0) {
            *isa = (rnc_isa)i;
            return RNC_OK;
        }
    if (strcmp(name, "auto") == 0) {
        *isa = RNC_ISA_AUTO;
        return RNC_OK;
    }
    return RNC_E_ISA;
}

rnc_status rnc_isa_compiled(rnc_isa isa, int *yes)
{
    if (!yes) return RNC_E_ARG;
    if ((unsigned)isa >= RNC_ISA_COUNT) return RNC_E_ISA;
    *yes = 0;
    for (size_t i = 0; i < rnc__kernel_count; ++i)
        if (rnc__kernels[i].isa == (uint8_t)isa) *yes = 1;
    return RNC_OK;
}

rnc_status rnc_isa_cpu_supported(rnc_isa isa, int *yes)
{
    if (!yes) return RNC_E_ARG;
    if ((unsigned)isa >= RNC_ISA_COUNT) return RNC_E_ISA;
    *yes = rnc__cpu_supports(isa);
    return RNC_OK;
}

static int isa_compiled(int isa)
{
    for (size_t i = 0; i < rnc__kernel_count; ++i)
        if (rnc__kernels[i].isa == (uint8_t)isa) return 1;
    return 0;
}

rnc_status rnc_isa_available(rnc_isa isa, int *yes)
{
    if (!yes) return RNC_E_ARG;
    if ((unsigned)isa >= RNC_ISA_COUNT) return RNC_E_ISA;
    *yes = isa_compiled(isa) && rnc__cpu_supports(isa);
    return RNC_OK;
}

rnc_status rnc_isa_best(rnc_isa *isa)
{
    /* preference order: most capable first */
    static const rnc_isa order[] = {RNC_ISA_AMX,     RNC_ISA_AVX512VNNI, RNC_ISA_AVX512,
                                    RNC_ISA_AVXVNNI, RNC_ISA_AVX2,       RNC_ISA_NEONDOT,
                                    RNC_ISA_NEON,    RNC_ISA_GENERIC};
    if (!isa) return RNC_E_ARG;
    const uint32_t cpu = rnc__cpu_isa_mask();
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); ++i) {
        if (((cpu >> order[i]) & 1u) && isa_compiled(order[i])) {
            *isa = order[i];
            return RNC_OK;
        }
    }
    *isa = RNC_ISA_GENERIC;
    return RNC_OK;
}
