/* AMX-INT8 q8 matrix product (TDPBSSD on 16 x 64-byte tiles) on rnncore's packed q8 layout.
 *
 * Compiled only with this file's flags (sources.mk: X86_AMX_FLAGS, -mamx-tile -mamx-int8 plus
 * AVX-512 VNNI for the fallback). Used where a product has many columns: the input projection
 * of a whole sequence (run() below batch 4: N = B*T columns) and the head over every step.
 * Fewer than RNC_AMX_MIN_N columns go to the AVX-512 VNNI kernel (a tile of 16 activation rows
 * would be mostly padding), and so do fewer than RNC_AMX_MIN_K inputs.
 *
 * Why the packed layout needs no repacking: docs/q8-contract.md stores block b of 16 weight
 * rows and group g of 4 inputs as 64 contiguous bytes, byte[(b*Kp/4 + g)*64 + r*4 + j] =
 * Wq[16b + r, 4g + j]. That is exactly AMX's "VNNI" layout of a B tile with 16 columns: tile
 * row g holds, for each of the 16 columns r, the 4 consecutive k of that column. So 16 groups of
 * one row block (1 KiB, contiguous) are one B tile, loaded with a 64-byte stride.
 *
 *   C[n][r] += sum_{g<16} sum_{j<4} A[n][4g+j] * B[g][4r+j]      (TDPBSSD: signed x signed)
 *
 * with A = 16 activation rows (Q, stride ldq) x 64 inputs and C = 16 x 16 int32 = Acc's layout
 * (Acc[n*ldacc + r]), stored with a stride of 4*ldacc bytes. Both operands are signed bytes and
 * TDPBSSD multiplies signed by signed, so neither the sign nor the offset trick is needed; every
 * partial sum is a 32-bit sum of exact products, |acc| <= Kp * 127 * 127 < 2^31 for every K the
 * format allows (RNC_Q8_MAX_K): the int32 accumulators equal the generic kernel's bit for bit.
 *
 * Register blocking: 2 x 2 C tiles (32 activation rows x 32 weight rows) with 2 A and 2 B tiles,
 * all eight tiles configured 16 rows x 64 bytes (palette 1). Edges never over-read or over-write:
 * an A tile that would read past row N or past input K, and a B tile that would read past the
 * block's last group, are copied into zero-filled staging tiles on the stack first (zeros add
 * nothing); a C tile with rows past N or columns past R is stored to a staging tile and only its
 * valid part copied out. Only full tiles go straight to and from the caller's memory.
 *
 * The kernel body is written once over six tile macros. With RNC_AMX_EMULATE they are plain C
 * (an exact model of the instructions' semantics, tests/test_x86_amx.c), so the blocking, edges
 * and layout are tested on CPUs without AMX; the build with the real instructions is the same
 * code; with RNC_AMX_EMULATE_LIBRARY too, the emulated kernel takes the real names so a whole
 * library with the AMX path runs its model tests on a CPU without AMX (make test-amx-emulated).
 * Before the first tile instruction Linux must grant the process the tile data state
 * (arch_prctl(ARCH_REQ_XCOMP_PERM)); cpu.c asks for it and reports AMX unavailable when refused,
 * so dispatch then stays on avx512vnni.
 */
#include <stdint.h>
#include <string.h>

#include "../internal.h"
#include "isa_target.h"

#if defined(RNC_TARGET_X86_AMX) || defined(RNC_AMX_EMULATE)

#if defined(RNC_AMX_EMULATE)
/* ---- plain-C model of the tile instructions (palette 1: 8 tiles of up to 16 x 64 bytes) ---- */
typedef struct {
    int8_t t[8][16][64];
} rnc_amx_emu;
#define AMX_STATE rnc_amx_emu emu_;
#define AMX_START() memset(&emu_, 0, sizeof emu_)
#define AMX_END() ((void)0)
#define TILE_ZERO(i) memset(emu_.t[i], 0, sizeof emu_.t[i])
#define TILE_LOAD(i, p, stride) emu_load(emu_.t[i], (const int8_t *)(p), (size_t)(stride))
#define TILE_STORE(i, p, stride) emu_store(emu_.t[i], (int8_t *)(p), (size_t)(stride))
#define TILE_DPBSSD(c, a, b) emu_dpbssd(emu_.t[c], emu_.t[a], emu_.t[b])
static void emu_load(int8_t t[16][64], const int8_t *p, size_t stride)
{
    for (int i = 0; i < 16; ++i) memcpy(t[i], p + (size_t)i * stride, 64);
}
static void emu_store(int8_t t[16][64], int8_t *p, size_t stride)
{
    for (int i = 0; i < 16; ++i) memcpy(p + (size_t)i * stride, t[i], 64);
}
static void emu_dpbssd(int8_t c[16][64], int8_t a[16][64], int8_t b[16][64])
{
    for (int m = 0; m < 16; ++m)
        for (int n = 0; n < 16; ++n) {
            int32_t acc;
            memcpy(&acc, &c[m][4 * n], 4);
            uint32_t u = (uint32_t)acc; /* the instruction wraps; exactness makes it moot */
            for (int k = 0; k < 16; ++k)
                for (int j = 0; j < 4; ++j)
                    u += (uint32_t)((int32_t)a[m][4 * k + j] * (int32_t)b[k][4 * n + j]);
            acc = (int32_t)u;
            memcpy(&c[m][4 * n], &acc, 4);
        }
}
#if defined(RNC_AMX_EMULATE_LIBRARY)
/* the whole library with emulated tiles (csrc/Makefile test-amx-emulated): real names */
#define RNC_AMX_GEMM rnc_q8_gemm_amx
#define RNC_AMX_MIN_N 16
#define RNC_AMX_MIN_K 64
#else
#define RNC_AMX_GEMM rnc_q8_gemm_amx_emulated
#define RNC_AMX_MIN_N 1
#define RNC_AMX_MIN_K 1
#endif
#else
/* ---- the real instructions ---- */
#include <immintrin.h>
typedef struct {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} rnc_amx_tilecfg; /* the 64-byte LDTILECFG operand */
#define AMX_STATE rnc_amx_tilecfg cfg_;
#define AMX_START()                                                                               \
    do {                                                                                          \
        memset(&cfg_, 0, sizeof cfg_);                                                            \
        cfg_.palette_id = 1;                                                                      \
        for (int i_ = 0; i_ < 8; ++i_) {                                                          \
            cfg_.colsb[i_] = 64;                                                                  \
            cfg_.rows[i_] = 16;                                                                   \
        }                                                                                         \
        RNC_AMX_BARRIER();                                                                        \
        _tile_loadconfig(&cfg_);                                                                  \
    } while (0)
/* GCC's tile intrinsics are asm statements that take the addresses as plain register operands
 * (tileloadd/tilestored) or name only 8 bytes of the 64-byte configuration (ldtilecfg): the
 * compiler does not see the memory they read or write, so it could drop the staging copies as
 * dead stores, refill the staging tile for the next load before this one has read it, or read a
 * staging tile before tilestored has filled it. Compiler barriers on both sides of every tile load
 * and store (volatile asm statements keep their order among themselves) make the memory effects
 * explicit; they cost nothing at run time. */
#define RNC_AMX_BARRIER() __asm__ __volatile__("" ::: "memory")
#define AMX_END() _tile_release()
#define TILE_ZERO(i) _tile_zero(i)
#define TILE_LOAD(i, p, stride)                                                                   \
    do {                                                                                          \
        RNC_AMX_BARRIER();                                                                        \
        _tile_loadd(i, p, (long)(stride));                                                        \
        RNC_AMX_BARRIER();                                                                        \
    } while (0)
#define TILE_STORE(i, p, stride)                                                                  \
    do {                                                                                          \
        RNC_AMX_BARRIER();                                                                        \
        _tile_stored(i, p, (long)(stride));                                                       \
        RNC_AMX_BARRIER();                                                                        \
    } while (0)
#define TILE_DPBSSD(c, a, b) _tile_dpbssd(c, a, b)
#define RNC_AMX_GEMM rnc_q8_gemm_amx
#define RNC_AMX_MIN_N 16
#define RNC_AMX_MIN_K 64
#endif

/* Tile numbers: C(n-block i, r-block j) = 2*i + j; A(i) = 4 + i; B(j) = 6 + j. The tile
 * arguments below must be literal numbers: the real instructions take them as immediates
 * (GCC's _tile_* macros paste them into the assembly text). */

/* A tile (4 or 5): activation rows n0.. n0+15, inputs 4*g0 .. 4*g0+63. Straight from Q when all of it
 * lies inside (16 rows and 64 inputs below K), else through the zero-filled staging tile. */
#define LOAD_A(tile, n0, g0)                                                                         \
    do {                                                                                          \
        const int nr_ = N - (n0) < 16 ? N - (n0) : 16;                                           \
        const int kb_ = K - 4 * (g0) < 64 ? K - 4 * (g0) : 64;                                    \
        if (nr_ == 16 && kb_ == 64) {                                                             \
            TILE_LOAD(tile, Q + (size_t)(n0) * (size_t)ldq + 4 * (size_t)(g0), ldq);           \
        } else {                                                                                  \
            memset(stage, 0, sizeof stage);                                                       \
            for (int m_ = 0; m_ < nr_; ++m_)                                                      \
                memcpy(stage[m_], Q + (size_t)((n0) + m_) * (size_t)ldq + 4 * (size_t)(g0),       \
                       (size_t)kb_);                                                              \
            TILE_LOAD(tile, stage, 64);                                                        \
        }                                                                                         \
    } while (0)

/* B tile (6 or 7): row block rb, groups g0 .. g0+15 (fewer at the end of the row: staged). */
#define LOAD_B(tile, rb, g0)                                                                         \
    do {                                                                                          \
        const int8_t *src_ = Wp + ((size_t)(rb) * (size_t)G + (size_t)(g0)) * 64;                 \
        const int ng_ = G - (g0) < 16 ? G - (g0) : 16;                                            \
        if (ng_ == 16) {                                                                          \
            TILE_LOAD(tile, src_, 64);                                                         \
        } else {                                                                                  \
            memset(stage, 0, sizeof stage);                                                       \
            memcpy(stage, src_, (size_t)ng_ * 64);                                                \
            TILE_LOAD(tile, stage, 64);                                                        \
        }                                                                                         \
    } while (0)

/* C tile (0..3) to Acc rows n0.., columns 16*rb..: straight when the whole 16 x 16 is valid. */
#define STORE_C(tile, n0, rb)                                                                        \
    do {                                                                                          \
        const int nr_ = N - (n0) < 16 ? N - (n0) : 16;                                            \
        const int nc_ = R - 16 * (rb) < 16 ? R - 16 * (rb) : 16;                                  \
        int32_t *dst_ = Acc + (size_t)(n0) * (size_t)ldacc + 16 * (size_t)(rb);                   \
        if (nr_ == 16 && nc_ == 16) {                                                             \
            TILE_STORE(tile, dst_, 4 * (size_t)ldacc);                                               \
        } else {                                                                                  \
            TILE_STORE(tile, stage, 64);                                                             \
            for (int m_ = 0; m_ < nr_; ++m_)                                                      \
                memcpy(dst_ + (size_t)m_ * (size_t)ldacc, stage[m_], sizeof(int32_t) * (size_t)nc_); \
        }                                                                                         \
    } while (0)

/* The tile kernel, for every N. */
static void amx_tiles(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                      int32_t *Acc, int ldacc)
{
    const int G = (K + 3) / 4;      /* groups of 4 inputs per packed row block (Kp / 4) */
    const int RB = (R + 15) / 16;   /* row blocks */
    int8_t stage[16][64];
    AMX_STATE
    AMX_START();
    for (int n0 = 0; n0 < N; n0 += 32) {
        const int two_n = n0 + 16 < N;
        for (int rb = 0; rb < RB; rb += 2) {
            const int two_r = rb + 1 < RB;
            TILE_ZERO(0);
            if (two_r) TILE_ZERO(1);
            if (two_n) TILE_ZERO(2);
            if (two_n && two_r) TILE_ZERO(3);
            for (int g0 = 0; g0 < G; g0 += 16) {
                LOAD_A(4, n0, g0);
                LOAD_B(6, rb, g0);
                TILE_DPBSSD(0, 4, 6);
                if (two_r) {
                    LOAD_B(7, rb + 1, g0);
                    TILE_DPBSSD(1, 4, 7);
                }
                if (two_n) {
                    LOAD_A(5, n0 + 16, g0);
                    TILE_DPBSSD(2, 5, 6);
                    if (two_r) TILE_DPBSSD(3, 5, 7);
                }
            }
            STORE_C(0, n0, rb);
            if (two_r) STORE_C(1, n0, rb + 1);
            if (two_n) STORE_C(2, n0 + 16, rb);
            if (two_n && two_r) STORE_C(3, n0 + 16, rb + 1);
        }
    }
    AMX_END();
}

/* The entry point: fewer than RNC_AMX_MIN_N columns, or fewer than RNC_AMX_MIN_K inputs (less than
 * one full 64-byte tile row: every A and B tile load would be staged; measured on Intel Xeons with
 * AMX, K = 32 products ran 1.2-1.6x slower than AVX-512 VNNI even at N = 400), go to AVX-512 VNNI.
 * The tile-only test build names it rnc_q8_gemm_amx_emulated and sends every shape through the
 * tiles. */
void RNC_AMX_GEMM(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq, int32_t *Acc,
                  int ldacc);
void RNC_AMX_GEMM(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq, int32_t *Acc,
                  int ldacc)
{
    if (R <= 0 || K <= 0 || N <= 0) return;
    if (N < RNC_AMX_MIN_N || K < RNC_AMX_MIN_K) {
        rnc_q8_gemm_avx512vnni(Wp, R, K, N, Q, ldq, Acc, ldacc);
        return;
    }
    amx_tiles(Wp, R, K, N, Q, ldq, Acc, ldacc);
}

#elif RNC_X86 && !defined(RNC_NO_X86_AMX)
#error "q8_gemm_amx.c needs AMX-TILE, AMX-INT8 and AVX-512 VNNI (sources.mk X86_AMX_FLAGS) unless RNC_NO_X86_AMX"
#else
/* The AMX group left out (-DRNC_NO_X86_AMX) or another architecture: keep the unit non-empty. */
typedef int rnc_gemm_amx_unused;
#endif
