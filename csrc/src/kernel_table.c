/* The kernel table: every kernel the engine calls, named by op, precision, strategy and ISA,
 * with the batch range and input mode it serves (rows from kernel_list.h). It is the only door:
 * rnc_model_set_isa builds the model's plan from it (rnc__pick_kernel), the C tests run every
 * row this CPU supports against its generic twin, and the Python tests and benchmarks read it
 * through rnc_kernel_info.
 *
 * Adding an ISA path = adding its files (one ISA per file, own flags, see sources.mk), a parent
 * in rnc__isa_parent and its lines in kernel_list.h. An op without a row for an ISA falls back to
 * the ISA's parent, so a path may provide only its products (GEMM) and reuse everything else.
 */
#include <string.h>

#include "internal.h"

/* the union member of each op's function */
#define RNC_FN_GEMV_Q8 gemm_q8
#define RNC_FN_GEMV_F32 gemm_f32
#define RNC_FN_QUANTIZE_Q8 quantize
#define RNC_FN_GEMM_DEQ_Q8 gemm_deq
#define RNC_FN_RNN_STEP_Q8 cell
#define RNC_FN_GRU_STEP_Q8 cell
#define RNC_FN_LSTM_STEP_Q8 cell
#define RNC_FN_RNN_STEP_F32 cell
#define RNC_FN_GRU_STEP_F32 cell
#define RNC_FN_LSTM_STEP_F32 cell
#define RNC_FN_SPGEMV_Q8 gemm_q8
#define RNC_FN_RNN_STEP_SPARSE_Q8 cell
#define RNC_FN_GRU_STEP_SPARSE_Q8 cell
#define RNC_FN_LSTM_STEP_SPARSE_Q8 cell
#define RNC_FN_SPGEMV_SHARED_Q8 gemm_q8
#define RNC_FN_GRU_STEP_SHARED_Q8 cell
#define RNC_FN_LSTM_STEP_SHARED_Q8 cell
#define RNC_FN_GEMV_Q4 gemm_q8
#define RNC_FN_RNN_STEP_Q4 cell
#define RNC_FN_GRU_STEP_Q4 cell
#define RNC_FN_LSTM_STEP_Q4 cell
#define RNC_FN_INT_STEP_INT8 int_step
#define RNC_FN_S8_MATVEC_INT8 s8_matvec
#define RNC_FN_RFFT_POWER_F32 rfft
#define RNC_FN_GEMM_Q16_Q8 gemm_q16
#define RNC_ROW(op, prec, f, isa, input, flags, bmin, bmax)                                      \
    {#f, RNC_OP_##op, RNC_##prec, isa, input, flags, bmin, bmax, {.RNC_FN_##op##_##prec = f}},

const rnc_kernel rnc__kernels[] = {RNC_KERNEL_LIST(RNC_ROW)};
const size_t rnc__kernel_count = sizeof(rnc__kernels) / sizeof(rnc__kernels[0]);
#undef RNC_ROW

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

#if RNC_X86 && !defined(RNC_NO_X86_AMX)
int rnc__layer_isa(int isa, uint32_t hidden)
{
    return isa == RNC_ISA_AMX && hidden < RNC_AMX_MIN_HIDDEN ? RNC_ISA_AVX512VNNI : isa;
}
#endif

int rnc__find_kernel(int op, int precision, int isa)
{
    for (size_t i = 0; i < rnc__kernel_count; ++i)
        if (rnc__kernels[i].op == op && rnc__kernels[i].precision == precision &&
            rnc__kernels[i].isa == isa)
            return (int)i;
    return -1;
}

int rnc__kernel_serves(const rnc_kernel *k, uint32_t batch, int input, int gru_rb, int sums)
{
    if (batch < k->min_batch || (k->max_batch && batch > k->max_batch)) return 0;
    if (k->input != RNC_IN_ANY && k->input != input) return 0;
    if ((k->flags & RNC_K_SUMS) && !sums) return 0;
    if ((k->flags & RNC_K_NO_GRU_RB) && gru_rb) return 0;
    return 1;
}

int rnc__pick_kernel(int op, int precision, int isa, uint32_t batch, int input, int gru_rb, int sums)
{
    for (; isa >= 0; isa = rnc__isa_parent(isa))
        for (size_t i = 0; i < rnc__kernel_count; ++i) {
            const rnc_kernel *k = &rnc__kernels[i];
            if (k->op == op && k->precision == precision && k->isa == isa &&
                rnc__kernel_serves(k, batch, input, gru_rb, sums))
                return (int)i;
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
    desc->input = rnc__kernels[index].input;
    desc->flags = rnc__kernels[index].flags;
    desc->min_batch = rnc__kernels[index].min_batch;
    desc->max_batch = rnc__kernels[index].max_batch;
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
