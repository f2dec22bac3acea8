/* libFuzzer harness of the model loader and everything a loaded model runs (make -C csrc fuzz).
 *
 * Each input is an .rnc file (any version). The harness first makes the checksum right, so that
 * mutations reach the parser instead of stopping at RNC_E_CHECKSUM:
 *   - the header's file_size field (offset 8 in both versions) larger than the input is set to the
 *     input's length (a short buffer is RNC_E_TRUNCATED, a path the C tests cover byte by byte);
 *   - the CRC field (offset 12) is set to the CRC32 of bytes [RNC_CRC_START, file_size);
 *   - the model buffer is a heap block of exactly file_size bytes, so ASan reports any read
 *     past the file.
 * A buffer the loader rejects must be rejected with a status of the API. A model it accepts is
 * run as a user would, on the best ISA path of this CPU and on the generic one:
 *   info -> layer info -> state init -> step / step_ids (x2, or RNC_E_BIDIRECTIONAL) ->
 *   run / run_ids over T steps with lengths, at batch 1 (lengths NULL) and batch 3 (T, 0, 2);
 * every call's status must be the same on both paths, and for q8 models every output and final
 * state must be bit-identical (docs/q8-contract.md); any difference aborts (a crash for libFuzzer).
 * f32 outputs may differ in rounding between paths and are compared by status only.
 * Inputs are finite, deterministic, in [-3, 3]; token ids in [0, embed_num).
 */
#define _POSIX_C_SOURCE 200112L /* posix_memalign */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/rnc_layout.h"
#include "rnncore.h"

#define MAX_INPUT (1u << 20)       /* larger inputs are skipped */
#define MAX_MEM ((size_t)1 << 28)  /* models needing more state/scratch are skipped (not a bug) */
#define T_STEPS 4u

typedef struct {
    unsigned char *buf; /* every status and output of one path, appended */
    size_t len, cap;
    /* f32: RNC_E_NONFINITE recorded as RNC_OK. Whether a sum of terms near FLT_MAX overflows
     * depends on the path's summation order (f32 is not bit-identical across paths; docs/c-api.md
     * "Non-finite values"), so one path may stop where another does not; q8 must agree. */
    int fold_nonfinite;
} trace;

static void put(trace *t, const void *p, size_t n)
{
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n) cap *= 2;
        unsigned char *nb = realloc(t->buf, cap);
        if (!nb) abort();
        t->buf = nb, t->cap = cap;
    }
    memcpy(t->buf + t->len, p, n);
    t->len += n;
}

static void put_status(trace *t, rnc_status s)
{
    uint32_t v = (uint32_t)s;
    if (v >= RNC_STATUS_COUNT) {
        fprintf(stderr, "fuzz_model: status %u outside the API's\n", v);
        abort();
    }
    if (t->fold_nonfinite && s == RNC_E_NONFINITE) v = RNC_OK;
    put(t, &v, sizeof v);
}

static void *xalloc(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 1) != 0) abort();
    memset(p, 0, n ? n : 1);
    return p;
}

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* One batch size on the model's current ISA: step x2 then run over T_STEPS, all into `t`. */
static void exercise(const rnc_model *m, const rnc_model_info *info, size_t batch, trace *t,
                     int outputs)
{
    size_t sbytes = 0, rbytes = 0;
    rnc_status s = rnc_state_size(m, batch, &sbytes);
    put_status(t, s);
    if (s != RNC_OK || sbytes > MAX_MEM) return;
    s = rnc_run_scratch_size(m, batch, T_STEPS, &rbytes);
    put_status(t, s);
    if (s != RNC_OK || rbytes > MAX_MEM) return;
    const size_t in = info->uses_ids ? 1 : info->input_size, out = info->output_size;
    if (in > MAX_MEM / 64 || out > MAX_MEM / 64) return;

    void *smem = xalloc(sbytes), *scratch = xalloc(rbytes);
    float *x = xalloc(batch * T_STEPS * in * sizeof(float));
    int32_t *ids = xalloc(batch * T_STEPS * sizeof(int32_t));
    float *y = xalloc(batch * T_STEPS * (out ? out : 1) * sizeof(float));
    uint32_t seed = 12345u;
    for (size_t i = 0; i < batch * T_STEPS * in; ++i)
        x[i] = ((float)(lcg(&seed) % 6001u) - 3000.0f) / 1000.0f;
    for (size_t i = 0; i < batch * T_STEPS; ++i)
        ids[i] = info->embed_num ? (int32_t)(lcg(&seed) % info->embed_num) : 0;

    rnc_state st;
    s = rnc_state_init(m, batch, smem, sbytes, &st);
    put_status(t, s);
    if (s == RNC_OK) {
        for (unsigned k = 0; k < 2; ++k) { /* streaming */
            s = info->uses_ids ? rnc_step_ids(m, &st, ids + k * batch, y)
                               : rnc_step(m, &st, x + k * batch * in, y);
            put_status(t, s);
            if (s == RNC_OK && outputs) put(t, y, batch * out * sizeof(float));
        }
        if (outputs) {
            put(t, st.h, st.h_count * sizeof(float));
            if (st.c) put(t, st.c, st.c_count * sizeof(float));
        }
        rnc_state_reset(&st);
        const int32_t lengths3[3] = {(int32_t)T_STEPS, 0, 2};
        const int32_t *lengths = batch == 3 ? lengths3 : NULL;
        s = info->uses_ids ? rnc_run_ids(m, &st, ids, lengths, T_STEPS, y, scratch, rbytes)
                           : rnc_run(m, &st, x, lengths, T_STEPS, y, scratch, rbytes);
        put_status(t, s);
        if (s == RNC_OK && outputs) {
            const size_t ny = info->last_step ? batch * out : batch * T_STEPS * out;
            put(t, y, ny * sizeof(float));
            put(t, st.h, st.h_count * sizeof(float));
            if (st.c) put(t, st.c, st.c_count * sizeof(float));
        }
    }
    free(smem), free(scratch), free(x), free(ids), free(y);
}

/* Everything a model does on one ISA path, into `t` (outputs only when they must match). */
static void run_path(rnc_model *m, rnc_isa isa, trace *t, int outputs)
{
    t->len = 0;
    rnc_status s = rnc_model_set_isa(m, isa);
    if (s != RNC_OK) {
        fprintf(stderr, "fuzz_model: set_isa(%d) on an accepted model: %s\n", (int)isa,
                rnc_status_str(s));
        abort();
    }
    rnc_model_info info;
    s = rnc_model_get_info(m, &info);
    put_status(t, s);
    if (s != RNC_OK) return;
    for (uint32_t l = 0; l <= info.num_layers; ++l) { /* one past the end: RNC_E_ARG */
        rnc_layer_info li;
        s = rnc_layer_get_info(m, l, &li);
        put_status(t, s);
        if (s == RNC_OK) put(t, &li, sizeof li);
    }
    exercise(m, &info, 1, t, outputs);
    exercise(m, &info, 3, t, outputs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) return 0;
    size_t len = size;
    unsigned char hdr[16] = {0};
    memcpy(hdr, data, size < 16 ? size : 16);
    if (size >= 16) {
        uint32_t fs;
        memcpy(&fs, hdr + 8, 4); /* file_size (the host is little-endian: rnc_model_init checks) */
        if (fs > size) fs = (uint32_t)size, memcpy(hdr + 8, &fs, 4);
        if (fs >= RNC_CRC_START) len = fs;
        uint32_t crc = 0;
        rnc_crc32(data + RNC_CRC_START, len - RNC_CRC_START, &crc);
        memcpy(hdr + 12, &crc, 4);
    }
    unsigned char *buf = xalloc(len);
    memcpy(buf, data, len);
    memcpy(buf, hdr, len < 16 ? len : 16);

    rnc_model m;
    const rnc_status s = rnc_model_init(&m, buf, len);
    if (s >= RNC_STATUS_COUNT) {
        fprintf(stderr, "fuzz_model: rnc_model_init returned %u\n", (unsigned)s);
        abort();
    }
    if (s == RNC_OK) {
        rnc_isa best = RNC_ISA_GENERIC;
        if (rnc_isa_best(&best) != RNC_OK) abort();
        rnc_model_info info;
        if (rnc_model_get_info(&m, &info) != RNC_OK) abort();
        const int q8 = info.precision == RNC_Q8 || info.precision == RNC_INT8; /* bit-exact on every path */
        static trace tb, tg;
        tb.fold_nonfinite = tg.fold_nonfinite = !q8;
        run_path(&m, best, &tb, q8);
        run_path(&m, RNC_ISA_GENERIC, &tg, q8);
        if (tb.len != tg.len || memcmp(tb.buf, tg.buf, tb.len) != 0) {
            const char *bn = "?";
            rnc_isa_name(best, &bn);
            size_t i = 0;
            while (i < tb.len && i < tg.len && tb.buf[i] == tg.buf[i]) ++i;
            fprintf(stderr, "fuzz_model: %s and generic differ (%s model): traces of %zu and %zu "
                    "bytes, first difference at byte %zu\n", bn, q8 ? "q8 / int8" : "f32 (statuses)",
                    tb.len, tg.len, i);
            abort();
        }
    }
    free(buf);
    return 0;
}
