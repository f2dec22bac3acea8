/* rnc_layout.h -- THE byte layout of .rnc files (docs/rnc-format.md), versions 1 and 2.
 *
 * This file is the single description of every header, record and sub-structure field: the C
 * loader (src/loader.c) reads fields only through the accessors generated below, and the Python
 * writer/reader (rnncore/io/rnc_layout.py) parses this very file to pack and unpack them.
 * tests/test_rnc_format.py compiles this header and checks that the C preprocessor and the Python
 * parser see the same table.
 *
 * Rules the Python parser relies on (keep them when editing):
 *   - a structure is declared by one  S(name, size_in_bytes)  entry in RNC_LAYOUT_STRUCTS;
 *   - a field is one  X(struct, field, byte_offset, TYPE)  entry, TYPE one of
 *       U32  little-endian unsigned 32-bit        F32  IEEE binary32      F64  IEEE binary64
 *       REF  tensor reference: u32 offset + u32 nbytes (8 bytes; (0, 0) = absent)
 *       CELLW  an embedded cellw structure (48 bytes);
 *   - a constant is one  #define RNC_NAME <decimal or 0x hex>u  line.
 * Every byte of a structure that no field names is reserved and must be zero (the loader and the
 * reader check that). Offsets are relative to the structure's start.
 */
#ifndef RNC_LAYOUT_H
#define RNC_LAYOUT_H

#include <stdint.h>
#include <string.h>

#define RNC_MAGIC 0x4D434E52u /* "RNCM" read as a little-endian u32 */
#define RNC_ALIGN 64u         /* tensor offsets are multiples of this */

/* ---- structures (name, size) ---------------------------------------------------------------- */
#define RNC_LAYOUT_STRUCTS(S)                                                                     \
    S(ref, 8)          /* a tensor reference (type REF) */                                        \
    S(hdr1, 128)       /* version 1 header, at offset 0 */                                        \
    S(desc1, 128)      /* version 1 layer descriptor, layer l at 128 + 128 l */                   \
    S(cellw, 48)       /* the six tensors of one direction of a recurrent layer (v1 and v2) */    \
    S(hdr2, 64)        /* version 2 header, at offset 0 */                                        \
    S(rec, 8)          /* version 2: the prefix every record starts with */                       \
    S(rec_embedding, 24)                                                                          \
    S(rec_recurrent, 48) /* fixed part; then one cellw per direction */                           \
    S(rec_last_step, 16)                                                                          \
    S(rec_linear, 48)                                                                             \
    S(spq8, 16)        /* version 2: the header of a block-sparse q8 matrix */                    \
    S(cellopt, 128)    /* v2 recurrent record with RNC_LAYER_FLAG_OPTIONS: after its cellw's */    \
    S(cellln, 32)      /* v2: after the cellopt when its flags have RNC_CELLOPT_LAYER_NORM */      \
    S(rec_frame_conv, 64) /* v2: a Conv1d within each step's frame (front-end) */                 \
    S(rec_pointwise, 24)  /* v2: a per-step activation */                                         \
    S(rec_magnitude, 8)   /* v2: |re + i im| of the two halves of each step's features */    \
    S(rec_layer_norm, 32) /* v2: LayerNorm over each step's features */                        \
    S(rec_scale_shift, 32) /* v2: x * scale + shift per feature (BatchNorm in inference) */ \
    S(cellint, 96)     /* v2 precision 3: after a recurrent record's cellw */                    \
    S(linint, 24)      /* v2 precision 3: after a linear record's fixed part */                  \
    S(rec_conv_time, 48)  /* v2: a causal Conv1d over time (front-end, window in the state) */ \
    S(rec_log_mel, 72)     /* v2: log-mel spectrogram of each step's frame (front-end, first) */ \
    S(fconvq8, 8)         /* v2 q8 files: after every frame_conv (72 bytes) and conv_time (56) record */ \
    S(rec_residual, 16)   /* v2: y = x + the input of an earlier per-step record (kind 12) */ \
    S(rec_pool_time, 32)  /* v2: max / average pooling over time (front-end, window in the state) */ \
    S(timepad, 16)        /* v2: padding over time, after a conv_time / pool_time record (optional) */ \
    S(fconvq16, 8)        /* v2 q8 files: after a frame_conv's fconvq8 tail, its 16 x 16 form (optional) */ \
    S(rec_mul_halves, 8)  /* v2: the product of the two halves of each step's features (kind 14) */ \
    S(attnpool, 32)       /* v2: after a last_step record with RNC_LAST_STEP_FLAG_ATTN (then 48 bytes) */ \
    S(rec_concat, 16)     /* v2: [the input of an earlier per-step record ; x] (kind 15) */ \
    S(rec_instance_norm, 32) /* v2: each channel normalised over a sequence's steps (kind 16) */ \
    S(rec_positions, 16)  /* v2: the front-end's row as P steps, the output their mean (kind 17) */

/* ---- both versions ------------------------------------------------------------------------ */
#define RNC_CRC_START 16u /* the checksum covers bytes [RNC_CRC_START, file_size) */

/* Ranges of the values the loader accepts (rnncore.h's public limits and enums, checked equal in
 * loader.c; the Python reader takes them from here). Enumerations are 0 .. COUNT - 1. */
#define RNC_FILE_PRECISIONS 3u   /* 0 f32, 1 q8, 2 q4 (v2 files only): what the host engine runs */
#define RNC_FILE_PRECISION_INT 3u /* v2 only: a fully-integer model (cellint / linint blocks below) */
#define RNC_FILE_CELL_KINDS 4u   /* 0 rnn tanh, 1 rnn relu, 2 gru, 3 lstm */
#define RNC_FILE_ACTIVATIONS 6u  /* head: 0 none, 1 relu, 2 sigmoid, 3 tanh, 4 softmax, 5 log_softmax */
#define RNC_FILE_MAX_LAYERS 16u  /* recurrent layers */
#define RNC_FILE_MAX_HIDDEN 65536u
#define RNC_FILE_MAX_FEATURES 1048576u /* input_size, embedding dim, head out_features */
#define RNC_FILE_MAX_VOCAB 16777216u   /* embedding rows */
#define RNC_FILE_Q8_MAX_K 131072u      /* q8: padded inputs per weight row (int32 sums cannot overflow) */

/* a tensor: byte offset from the start of the file and byte length; (0, 0) = absent */
#define RNC_FIELDS_ref(X)                                                                         \
    X(ref, offset, 0, U32)                                                                        \
    X(ref, nbytes, 4, U32)

/* ---- version 1 ------------------------------------------------------------------------------ */
#define RNC_V1 1u
#define RNC_V1_HEADER_SIZE 128u
#define RNC_V1_DESC_SIZE 128u
#define RNC_V1_DESC_DIR0 32u    /* cellw of direction d at desc + RNC_V1_DESC_DIR0 + 48 d */
#define RNC_V1_FLAG_EMBEDDING 1u
#define RNC_V1_FLAG_HEAD 2u
#define RNC_V1_FLAG_LAST_STEP 4u
#define RNC_V1_FLAG_LAST_STEP_BIDIR 8u

#define RNC_FIELDS_hdr1(X)                                                                        \
    X(hdr1, magic, 0, U32)                                                                        \
    X(hdr1, version, 4, U32)                                                                      \
    X(hdr1, file_size, 8, U32)                                                                    \
    X(hdr1, crc32, 12, U32)                                                                       \
    X(hdr1, header_size, 16, U32)                                                                 \
    X(hdr1, precision, 20, U32)                                                                   \
    X(hdr1, num_layers, 24, U32)                                                                  \
    X(hdr1, input_size, 28, U32)                                                                  \
    X(hdr1, flags, 32, U32)                                                                       \
    X(hdr1, embed_num, 36, U32)                                                                   \
    X(hdr1, embed_dim, 40, U32)                                                                   \
    X(hdr1, head_in, 44, U32)                                                                     \
    X(hdr1, head_out, 48, U32)                                                                    \
    X(hdr1, head_activation, 52, U32)                                                             \
    X(hdr1, head_in_scale, 56, F32)                                                               \
    X(hdr1, layer_desc_size, 60, U32)                                                             \
    X(hdr1, embedding, 64, REF)                                                                   \
    X(hdr1, head_weight, 72, REF)                                                                 \
    X(hdr1, head_scale, 80, REF)                                                                  \
    X(hdr1, head_bias, 88, REF)

#define RNC_FIELDS_desc1(X)                                                                       \
    X(desc1, kind, 0, U32)                                                                        \
    X(desc1, flags, 4, U32)                                                                       \
    X(desc1, input_size, 8, U32)                                                                  \
    X(desc1, hidden_size, 12, U32)                                                                \
    X(desc1, x_scale, 16, F32)                                                                    \
    X(desc1, h_scale, 20, F32)                                                                    \
    X(desc1, h_scale_reverse, 24, F32)                                                            \
    X(desc1, dir0, 32, CELLW)                                                                     \
    X(desc1, dir1, 80, CELLW)

/* one direction's tensors (v1 descriptors and v2 recurrent records) */
#define RNC_FIELDS_cellw(X)                                                                       \
    X(cellw, w_ih, 0, REF)                                                                        \
    X(cellw, w_hh, 8, REF)                                                                        \
    X(cellw, s_ih, 16, REF)                                                                       \
    X(cellw, s_hh, 24, REF)                                                                       \
    X(cellw, b_ih, 32, REF)                                                                       \
    X(cellw, b_hh, 40, REF)

/* recurrent layer flags (v1 descriptor flags, v2 rec_recurrent flags) */
#define RNC_LAYER_FLAG_RESET_AFTER 1u
#define RNC_LAYER_FLAG_BIDIR 2u
/* v2, q8 only: every direction's W_ih (resp. W_hh) is block-sparse (spq8 below), the cellw's
 * w_ih (w_hh) reference pointing at that tensor instead of the dense packed matrix. Not with
 * GRU reset_after = 0 (its r*h product takes a row range of W_hh). */
#define RNC_LAYER_FLAG_SPARSE_IH 4u
#define RNC_LAYER_FLAG_SPARSE_HH 8u
#define RNC_LAYER_FLAG_OPTIONS 16u /* v2 only: a cellopt follows the record's cellw's */
/* v2, with SPARSE_IH (SPARSE_HH), GRU and LSTM only: that block-sparse matrix is in the
 * gate-shared layout (spq8 below): one index list per 16-unit block for all G gates. */
#define RNC_LAYER_FLAG_SHARED_IH 32u
#define RNC_LAYER_FLAG_SHARED_HH 64u

/* The cell options of a v2 recurrent record (ONNX RNN/GRU/LSTM attributes, learned initial
 * states). Present exactly when the record's flags have RNC_LAYER_FLAG_OPTIONS (the record is then
 * 48 + 48 D + 128 bytes); a layer without it runs the default cell. act_d<d>_<k> is the k-th
 * activation of direction d (ONNX order: RNN f; GRU f, g; LSTM f, g, h), one of RNC_CELLACT_*, with
 * its alpha_/beta_ parameters; slots the cell does not use (and direction 1 of a unidirectional
 * layer) are 0. peepholes: LSTM, D x 3 x H floats (rows p_i, p_f, p_o); initial_h / initial_c:
 * D x P floats (initial_c: D x H), the state rnc_state_init / rnc_state_reset give every batch row
 * (else zeros). proj_size P (LSTM, 0 < P < H; 0 = none): h' = W_hr (o * h(c')) as PyTorch's
 * proj_size, W_hr of every direction one packed matrix of D * round16(P) rows and H inputs (w_hr;
 * q8: s_hr its row scales); the layer's h, output and W_hh's inputs are then P wide. */
#define RNC_CELLOPT_REVERSE 1u      /* one direction that reads each sequence backwards */
#define RNC_CELLOPT_INPUT_FORGET 2u /* LSTM: f = 1 - i */
#define RNC_CELLOPT_CLIP 4u         /* gate pre-activations clipped to [-clip, clip] */
#define RNC_CELLOPT_PEEPHOLES 8u    /* LSTM peephole weights */
#define RNC_CELLOPT_INITIAL_H 16u
#define RNC_CELLOPT_INITIAL_C 32u   /* LSTM */
#define RNC_CELLOPT_REVERSE_OUTPUT 64u /* with reverse: outputs in processing order (Keras go_backwards) */
#define RNC_CELLOPT_LAYER_NORM 128u /* GRU (reset_after) / LSTM: layer-normalised cell, a cellln follows */
#define RNC_CELLOPT_FLAGS_ALL 255u
#define RNC_CELLACT_SIGMOID 0u
#define RNC_CELLACT_TANH 1u
#define RNC_CELLACT_RELU 2u
#define RNC_CELLACT_HARDSIGMOID 3u  /* min(max(alpha x + beta, 0), 1) */
#define RNC_CELLACT_AFFINE 4u       /* alpha x + beta */
#define RNC_CELLACT_LEAKYRELU 5u    /* x >= 0 ? x : alpha x */
#define RNC_CELLACT_THRESHOLDEDRELU 6u /* x > alpha ? x : 0 */
#define RNC_CELLACT_SCALEDTANH 7u   /* alpha tanh(beta x) */
#define RNC_CELLACT_ELU 8u          /* x >= 0 ? x : alpha (exp(x) - 1) */
#define RNC_CELLACT_SOFTSIGN 9u     /* x / (1 + |x|) */
#define RNC_CELLACT_SOFTPLUS 10u    /* max(x, 0) + log1p(exp(-|x|)) */
#define RNC_FILE_CELL_ACTIVATIONS 11u
#define RNC_FIELDS_cellopt(X)                                                                     \
    X(cellopt, flags, 0, U32)                                                                     \
    X(cellopt, clip, 4, F32)                                                                      \
    X(cellopt, act_d0_0, 8, U32)                                                                  \
    X(cellopt, act_d0_1, 12, U32)                                                                 \
    X(cellopt, act_d0_2, 16, U32)                                                                 \
    X(cellopt, act_d1_0, 20, U32)                                                                 \
    X(cellopt, act_d1_1, 24, U32)                                                                 \
    X(cellopt, act_d1_2, 28, U32)                                                                 \
    X(cellopt, alpha_d0_0, 32, F32)                                                               \
    X(cellopt, alpha_d0_1, 36, F32)                                                               \
    X(cellopt, alpha_d0_2, 40, F32)                                                               \
    X(cellopt, alpha_d1_0, 44, F32)                                                               \
    X(cellopt, alpha_d1_1, 48, F32)                                                               \
    X(cellopt, alpha_d1_2, 52, F32)                                                               \
    X(cellopt, beta_d0_0, 56, F32)                                                                \
    X(cellopt, beta_d0_1, 60, F32)                                                                \
    X(cellopt, beta_d0_2, 64, F32)                                                                \
    X(cellopt, beta_d1_0, 68, F32)                                                                \
    X(cellopt, beta_d1_1, 72, F32)                                                                \
    X(cellopt, beta_d1_2, 76, F32)                                                                \
    X(cellopt, peepholes, 80, REF)                                                                \
    X(cellopt, initial_h, 88, REF)                                                                \
    X(cellopt, initial_c, 96, REF)                                                                \
    X(cellopt, proj_size, 104, U32)                                                               \
    X(cellopt, w_hr, 112, REF)                                                                    \
    X(cellopt, s_hr, 120, REF)

/* The layer normalisation of a layer-normalised GRU / LSTM (Ba et al. 2016; rnncore.nn.lncells):
 * present exactly when the cellopt's flags have RNC_CELLOPT_LAYER_NORM (the record is then
 * 48 + 48 D + 128 + 32 bytes). With G gates and N = G*H:
 *   a_ih = LN(W_ih x + b_ih; ln_ih), a_hh = LN(W_hh h + b_hh; ln_hh) take the place of
 *   W_ih x + b_ih and W_hh h + b_hh in the cell (rnncore.nn.lncells' layers have zero biases: the
 *   shifts play their part), and the LSTM computes h' = o * h(LN(c'; ln_c)) (then the
 *   projection, if any).
 * LN(v; g, b)_k = ((v_k - mu) * r) * g_k + b_k, mu = sum(v) / n, r = 1 / sqrt(sum((v - mu)^2) / n
 * + eps) over each gate's H values (flag PER_GATE) or all N together; the float32 operation order
 * (the sums in 8 lanes) is docs/q8-contract.md's. ln_ih, ln_hh: D x 2 x N floats, per direction
 * the gains then the shifts (gate g unit u at g*H + u, unpadded); ln_c: LSTM D x 2 x H, else
 * absent. Not with input_forget, clip, peepholes, an RNN cell or GRU reset_after = 0. */
#define RNC_CELLLN_PER_GATE 1u
#define RNC_CELLLN_FLAGS_ALL 1u
#define RNC_FIELDS_cellln(X)                                                                      \
    X(cellln, flags, 0, U32)                                                                      \
    X(cellln, eps, 4, F32)                                                                        \
    X(cellln, ln_ih, 8, REF)                                                                      \
    X(cellln, ln_hh, 16, REF)                                                                     \
    X(cellln, ln_c, 24, REF)

/* ---- version 2 ------------------------------------------------------------------------------ */
#define RNC_V2 2u
#define RNC_V2_HEADER_SIZE 64u

#define RNC_FIELDS_hdr2(X)                                                                        \
    X(hdr2, magic, 0, U32)                                                                        \
    X(hdr2, version, 4, U32)                                                                      \
    X(hdr2, file_size, 8, U32)                                                                    \
    X(hdr2, crc32, 12, U32)                                                                       \
    X(hdr2, header_size, 16, U32)                                                                 \
    X(hdr2, precision, 20, U32)                                                                   \
    X(hdr2, input_size, 24, U32)                                                                  \
    X(hdr2, num_records, 28, U32)                                                                 \
    X(hdr2, records_size, 32, U32)                                                                \
    X(hdr2, flags, 36, U32)

/* Records follow the header back to back (records_size bytes). Each starts with kind and size
 * (its whole size in bytes, prefix included, a multiple of 8): a reader can step over any record. */
#define RNC_FIELDS_rec(X)                                                                         \
    X(rec, kind, 0, U32)                                                                          \
    X(rec, size, 4, U32)

#define RNC_REC_EMBEDDING 1u
#define RNC_REC_RECURRENT 2u
#define RNC_REC_LAST_STEP 3u
#define RNC_REC_LINEAR 4u

#define RNC_FIELDS_rec_embedding(X)                                                               \
    X(rec_embedding, kind, 0, U32)                                                                \
    X(rec_embedding, size, 4, U32)                                                                \
    X(rec_embedding, num, 8, U32)                                                                 \
    X(rec_embedding, dim, 12, U32)                                                                \
    X(rec_embedding, weight, 16, REF)

/* size = 48 + 48 * directions; direction d's cellw at RNC_REC_RECURRENT_DIR0 + 48 d.
 * w_hh_sums (q8; absent for f32): every direction's W_hh row sums, int32, direction after
 * direction, G*Hp each: sum_k Wq_hh[r, k] (the "kernel sums" of the unsigned-offset products,
 * precomputed by the writer, checked by the loader). */
#define RNC_REC_RECURRENT_DIR0 48u
#define RNC_FIELDS_rec_recurrent(X)                                                               \
    X(rec_recurrent, kind, 0, U32)                                                                \
    X(rec_recurrent, size, 4, U32)                                                                \
    X(rec_recurrent, cell, 8, U32)                                                                \
    X(rec_recurrent, flags, 12, U32)                                                              \
    X(rec_recurrent, input_size, 16, U32)                                                         \
    X(rec_recurrent, hidden_size, 20, U32)                                                        \
    X(rec_recurrent, x_scale, 24, F32)                                                            \
    X(rec_recurrent, h_scale, 28, F32)                                                            \
    X(rec_recurrent, h_scale_reverse, 32, F32)                                                    \
    X(rec_recurrent, w_hh_sums, 40, REF)

#define RNC_LAST_STEP_FLAG_BIDIR 1u
/* the pooling is the mean over each sequence's valid steps (MaskedMean), not its last step; not
 * with BIDIR, not in an integer file */
#define RNC_LAST_STEP_FLAG_MEAN 2u
/* the pooling is additive attention over each sequence's valid steps (AttentionPool): the record
 * is 48 bytes, its attnpool tail after the 16. Not with BIDIR or MEAN, not in an integer file.
 *   u_t = tanh(W x_t + b), e_t = v . u_t, a = softmax of e over the valid steps, y = sum_t a_t x_t
 * attention_size A in 1..RNC_FILE_MAX_FEATURES; features F: the pooled width (the running
 * width there); weight: f32 [A * F] row-major (row a: W[a, :]); bias, score: f32 [A] (bias: zeros
 * when the model has none). The weights are f32 in f32 and q8 files alike. */
#define RNC_LAST_STEP_FLAG_ATTN 4u
/* the pooling is the maximum over each sequence's valid steps, feature by feature (MaskedMax), not
 * its last step; not with ATTN, nor with BIDIR without LAST, not in an integer file. With MEAN too
 * the pooled row is [mean | max] (rnncore.nn.ConcatPool), see LAST */
#define RNC_LAST_STEP_FLAG_MAX 8u
/* with MEAN and/or MAX: the last valid step too (BIDIR: its backward half at t = 0), the pooled
 * row is the parts in the fixed order [last | mean | max], each of the running width F, so parts x F
 * wide (rnncore.nn.ConcatPool). Not alone, not with ATTN, not in an integer file */
#define RNC_LAST_STEP_FLAG_LAST 16u
#define RNC_FIELDS_attnpool(X)                                                                    \
    X(attnpool, attention_size, 0, U32)                                                           \
    X(attnpool, features, 4, U32)                                                                 \
    X(attnpool, weight, 8, REF)                                                                   \
    X(attnpool, bias, 16, REF)                                                                    \
    X(attnpool, score, 24, REF)
#define RNC_FIELDS_rec_last_step(X)                                                               \
    X(rec_last_step, kind, 0, U32)                                                                \
    X(rec_last_step, size, 4, U32)                                                                \
    X(rec_last_step, flags, 8, U32)

/* ---- per-step records (f32 files): front-end before the recurrent layers, pointwise after ----
 * Kinds 5.. run at every step of every sequence, each step independently (no state): what
 * rnc_step does to one row is exactly what rnc_run does to row (b, t). */
#define RNC_REC_FRAME_CONV 5u
#define RNC_REC_POINTWISE 6u
#define RNC_REC_MAGNITUDE 7u
#define RNC_REC_LAYER_NORM 8u
#define RNC_REC_SCALE_SHIFT 9u
#define RNC_REC_LOG_MEL 13u

/* frame_conv: each step's in_features = in_channels * frame_length inputs are C_in channels of L
 * samples, channel-major (x[c*L + i]); the output is C_out channels of L_out samples, channel-major:
 *   y[o*L_out + l] = bias[o] + sum_{c < C_in/groups} sum_{j < k} W[o, c, j] xpad[(g(o) C_g + c), l*stride + j*dilation]
 * xpad: the frame with pad_left / pad_right samples before / after it, zeros (padding_mode 0) or
 * the mirror image (1, PyTorch's reflect: both pads < L); L_out = floor((L + pl + pr -
 * dilation (k - 1) - 1) / stride) + 1 >= 1. weight: groups packed f32 matrices (the layout of
 * docs/rnc-format.md), group g's rows the C_out/groups outputs (round16 rows), inputs [c][j]
 * (c-major, C_g * k); bias: C_out floats (zeros when the model has none). */
#define RNC_PAD_ZEROS 0u
#define RNC_PAD_REFLECT 1u
#define RNC_FILE_PAD_MODES 2u
#define RNC_FIELDS_rec_frame_conv(X)                                                              \
    X(rec_frame_conv, kind, 0, U32)                                                               \
    X(rec_frame_conv, size, 4, U32)                                                               \
    X(rec_frame_conv, in_channels, 8, U32)                                                        \
    X(rec_frame_conv, out_channels, 12, U32)                                                      \
    X(rec_frame_conv, kernel_size, 16, U32)                                                       \
    X(rec_frame_conv, frame_length, 20, U32)                                                      \
    X(rec_frame_conv, stride, 24, U32)                                                            \
    X(rec_frame_conv, dilation, 28, U32)                                                          \
    X(rec_frame_conv, groups, 32, U32)                                                            \
    X(rec_frame_conv, pad_left, 36, U32)                                                          \
    X(rec_frame_conv, pad_right, 40, U32)                                                         \
    X(rec_frame_conv, padding_mode, 44, U32)                                                      \
    X(rec_frame_conv, weight, 48, REF)                                                            \
    X(rec_frame_conv, bias, 56, REF)
#define RNC_FILE_MAX_FRONT 64u     /* per-step records (kinds 5..16) per file */
#define RNC_FILE_MAX_KERNEL 65536u /* frame_conv kernel_size, stride, dilation, padding */

/* pointwise: y = f(x) element by element on `features` values (the running width) */
#define RNC_PW_RELU 0u
#define RNC_PW_SIGMOID 1u
#define RNC_PW_TANH 2u
#define RNC_PW_HARDSIGMOID 3u   /* min(max(alpha x + beta, 0), 1) */
#define RNC_PW_GELU 4u          /* x/2 (1 + erf(x / sqrt 2)) */
#define RNC_PW_GELU_TANH 5u     /* x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
#define RNC_PW_LEAKYRELU 6u     /* x >= 0 ? x : alpha x (RNC_CELLACT_LEAKYRELU's code) */
#define RNC_PW_ELU 7u           /* x >= 0 ? x : alpha (exp(x) - 1) (RNC_CELLACT_ELU's code) */
/* kinds 8..12: left out of a build with -DRNC_NO_PW_EXT (the dense deploy build) */
#define RNC_PW_HARDTANH 8u      /* min(max(x, alpha), beta): alpha = min_val, beta = max_val */
#define RNC_PW_SILU 9u          /* x / (1 + exp(-x)) */
#define RNC_PW_HARDSWISH 10u    /* x min(max(x + 3, 0), 6) / 6 */
#define RNC_PW_SOFTPLUS 11u     /* alpha x > beta ? x : softplus(alpha x) / alpha (RNC_CELLACT_SOFTPLUS's code) */
#define RNC_PW_SOFTSIGN 12u     /* x / (1 + |x|) (RNC_CELLACT_SOFTSIGN's code) */
#define RNC_PW_LOG_AFFINE 13u   /* rnc_logf(alpha x + beta) (kernels/logf.h); left out with -DRNC_NO_CHUNK */
#define RNC_PW_ABS 14u          /* |x| (fabsf; rc.nn.Abs, ONNX Abs: SincNet's); left out with -DRNC_NO_CHUNK */
#define RNC_FILE_PW_KINDS 15u
/* fconvq8: the tail of a frame_conv record in a q8 file. scale present: f32 [groups *
 * round16(C_out/groups)] per-row weight scales, and the record's weight holds `groups` packed q8
 * matrices of round16(C_out/groups) rows x round4(C_in/groups * k) inputs (int8, -127..127, zero
 * past C_g*k); scale absent (0, 0): the record's weights are f32 as in an f32 file. */
#define RNC_FIELDS_fconvq8(X) X(fconvq8, scale, 0, REF)
/* fconvq16: after the fconvq8 tail of a q8 file's frame_conv (the record is then 80 bytes; 72
 * without it, as in files written before): the 16 x 16 product (docs/q8-contract.md, "A 16-bit
 * product in the frame convolutions"). bits = 16; the fconvq8 scale is present (f32 [groups *
 * round16(C_out/groups)] per-row weight scales) and the record's weight holds `groups` int16
 * matrices of round16(C_out/groups) rows x round16(C_in/groups * k) inputs, row-major (row r's
 * input i at r * round16(C_g k) + i), values in -32767..32767, zero past C_g k. The row's codes
 * are int16 (32767 for 127) and the sums exact int64. */
#define RNC_FCONV_BITS16 16u
#define RNC_FIELDS_fconvq16(X) X(fconvq16, bits, 0, U32)
/* In a q8 file a conv_time record has the same tail (56 bytes): scale present, f32 [groups *
 * round16(C_out/groups)] row scales and the weight as groups packed q8 matrices of
 * round16(C_out/groups) rows x round4(C_in/groups * k) inputs; absent, f32 weights. */

/* residual (kind 12): y[i] = x[i] + u[i] over the `features` values of a step, x this record's
 * input and u the input of the per-step record `span` records before this one (span >= 1; those
 * span records are the f of Residual(f)). The span counts per-step and recurrent records (not
 * embedding, last_step, linear): the source is a per-step record of its section, or the span
 * crosses recurrent records (y = x + GRU(x): span 1 after the recurrent record, its source) and
 * the source is a recurrent record or a per-step record before it; the source takes `features`
 * values, and the span includes no record that gives no output at some steps. */
#define RNC_REC_RESIDUAL 12u
#define RNC_FIELDS_rec_residual(X)                                                                \
    X(rec_residual, kind, 0, U32)                                                                 \
    X(rec_residual, size, 4, U32)                                                                 \
    X(rec_residual, features, 8, U32)                                                             \
    X(rec_residual, span, 12, U32)

/* concat (kind 15): y = [u ; x], u the input of the per-step record `span` records before this one
 * (span >= 1, within the front-end: those span records are the body of FrameConcat(body)), x this
 * record's `features` values: u's width + features values out; the span includes no record that
 * gives no output at some steps. */
#define RNC_REC_CONCAT 15u
#define RNC_FIELDS_rec_concat(X)                                                                  \
    X(rec_concat, kind, 0, U32)                                                                   \
    X(rec_concat, size, 4, U32)                                                                   \
    X(rec_concat, features, 8, U32)                                                               \
    X(rec_concat, span, 12, U32)

/* instance_norm (kind 16, front-end only, rnc_run only): each of the `features` channels
 * normalised over the valid steps of each sequence, PyTorch's InstanceNorm1d:
 *   mu = (float)(sum_t (double)x_t / n), d_t = x_t - mu, var = (float)(sum_t (double)d_t d_t / n),
 *   y_t = d_t * (1.0f / sqrtf(var + eps)) * weight + bias (float32; the sums in order of t)
 * n the sequence's output steps of the records before it; weight, bias: f32 [features] (ones /
 * zeros without affine). It splits the front-end: the records before it run over the whole
 * sequence first (a stream cannot run it: rnc_step refuses the model). */
#define RNC_REC_INSTANCE_NORM 16u
#define RNC_FIELDS_rec_instance_norm(X)                                                           \
    X(rec_instance_norm, kind, 0, U32)                                                            \
    X(rec_instance_norm, size, 4, U32)                                                            \
    X(rec_instance_norm, features, 8, U32)                                                        \
    X(rec_instance_norm, eps, 12, F32)                                                            \
    X(rec_instance_norm, weight, 16, REF)                                                         \
    X(rec_instance_norm, bias, 24, REF)

/* positions (kind 17): the front-end's row of `features` = C x P values (value c*P + p: channel c at
 * position p) is P steps of C features for the records after it, the last of the front-end (a
 * recurrent record follows): the recurrent layers step P times per step of the model (their state
 * carried), the later per-step records and the head map each position, and the model's output at
 * the step is the mean of the P positions' outputs: summed in position order, then divided by P
 * (float32). No last_step follows it. rnncore.nn.ChunkPositions(C, P) ... ChunkMean(P). */
#define RNC_REC_POSITIONS 17u
#define RNC_FIELDS_rec_positions(X)                                                               \
    X(rec_positions, kind, 0, U32)                                                                \
    X(rec_positions, size, 4, U32)                                                                \
    X(rec_positions, features, 8, U32)                                                            \
    X(rec_positions, positions, 12, U32)

#define RNC_FIELDS_rec_pointwise(X)                                                               \
    X(rec_pointwise, kind, 0, U32)                                                                \
    X(rec_pointwise, size, 4, U32)                                                                \
    X(rec_pointwise, features, 8, U32)                                                            \
    X(rec_pointwise, activation, 12, U32)                                                         \
    X(rec_pointwise, alpha, 16, F32)                                                              \
    X(rec_pointwise, beta, 20, F32)

/* mul_halves: features 2M -> M, y[i] = x[i] * x[M + i] (Keras Bidirectional merge_mode "mul" on
 * the [forward | backward] output); before, between and after the recurrent layers */
#define RNC_REC_MUL_HALVES 14u
#define RNC_FIELDS_rec_mul_halves(X)                                                              \
    X(rec_mul_halves, kind, 0, U32)                                                               \
    X(rec_mul_halves, size, 4, U32)

/* magnitude: features 2M -> M, y[i] = sqrt(x[i]^2 + x[M + i]^2) */
#define RNC_FIELDS_rec_magnitude(X)                                                               \
    X(rec_magnitude, kind, 0, U32)                                                                \
    X(rec_magnitude, size, 4, U32)

/* layer_norm: y = (x - mean) / sqrt(var + eps) * weight + bias over the `features` values of a
 * step (var the biased variance); weight, bias: f32 [features] (ones / zeros without affine) */
#define RNC_FIELDS_rec_layer_norm(X)                                                              \
    X(rec_layer_norm, kind, 0, U32)                                                               \
    X(rec_layer_norm, size, 4, U32)                                                               \
    X(rec_layer_norm, features, 8, U32)                                                           \
    X(rec_layer_norm, eps, 12, F32)                                                               \
    X(rec_layer_norm, weight, 16, REF)                                                            \
    X(rec_layer_norm, bias, 24, REF)

/* scale_shift: y[i] = x[i] * scale[i] + shift[i] (a BatchNorm1d in inference that no layer before
 * it absorbs); scale, shift: f32 [features] */
#define RNC_FIELDS_rec_scale_shift(X)                                                             \
    X(rec_scale_shift, kind, 0, U32)                                                              \
    X(rec_scale_shift, size, 4, U32)                                                              \
    X(rec_scale_shift, features, 8, U32)                                                          \
    X(rec_scale_shift, scale, 16, REF)                                                            \
    X(rec_scale_shift, shift, 24, REF)

/* conv_time: a causal Conv1d over the time axis. With P = dilation (kernel_size - 1):
 *   y_t[o] = bias[o] + sum_{c < C_in/groups} sum_{j < k} W[o, c, j] x_{t - P + j dilation}[g(o) C_g + c]
 * at the steps t = 0, stride, 2 stride, ... (PyTorch's Conv1d(stride) after a left pad of P; the
 * other steps give no output, docs/c-api.md)
 * where x_t is the record's input at step t (in_channels features) and x_{t'} = 0 for t' < 0 (the
 * start of a sequence or of a reset stream); out_channels features per step. A stream keeps its
 * last P inputs (P x in_channels floats per batch row) in the state's window area (docs/c-api.md).
 * weight: groups packed f32 matrices as frame_conv's (round16(C_out/groups) rows, inputs [c][j]);
 * bias: C_out floats. */
#define RNC_REC_CONV_TIME 10u
#define RNC_FILE_MAX_WINDOW 1048576u /* conv_time: P * in_channels floats per stream row */
#define RNC_FIELDS_rec_conv_time(X)                                                               \
    X(rec_conv_time, kind, 0, U32)                                                                \
    X(rec_conv_time, size, 4, U32)                                                                \
    X(rec_conv_time, in_channels, 8, U32)                                                         \
    X(rec_conv_time, out_channels, 12, U32)                                                       \
    X(rec_conv_time, kernel_size, 16, U32)                                                        \
    X(rec_conv_time, stride, 20, U32)                                                             \
    X(rec_conv_time, dilation, 24, U32)                                                           \
    X(rec_conv_time, groups, 28, U32)                                                             \
    X(rec_conv_time, weight, 32, REF)                                                             \
    X(rec_conv_time, bias, 40, REF)

/* pool_time (kind 11): max or average pooling over time, no padding (PyTorch's MaxPool1d /
 * AvgPool1d, Keras' MaxPooling1D / AveragePooling1D with padding "valid"). With P = dilation
 * (kernel_size - 1), output n is at step t = P + n stride of the record's input:
 *   y_t[c] = max_{j < k} x_{t - P + j dilation}[c]   (op 0)  or  (1/k) sum_{j < k} ... (op 1)
 * channels features in and out; the other steps (the first P, then stride - 1 of every stride)
 * give no output. A stream keeps its last P inputs and a countdown (docs/c-api.md). */
#define RNC_REC_POOL_TIME 11u
#define RNC_POOL_MAX 0u
#define RNC_POOL_AVG 1u
#define RNC_FILE_POOL_OPS 2u
#define RNC_FIELDS_rec_pool_time(X)                                                               \
    X(rec_pool_time, kind, 0, U32)                                                                \
    X(rec_pool_time, size, 4, U32)                                                                \
    X(rec_pool_time, channels, 8, U32)                                                            \
    X(rec_pool_time, kernel_size, 12, U32)                                                        \
    X(rec_pool_time, stride, 16, U32)                                                             \
    X(rec_pool_time, dilation, 20, U32)                                                           \
    X(rec_pool_time, op, 24, U32)

/* timepad: the padding over time of the conv_time or pool_time record it follows (after the
 * record's structure and, in a q8 file, a conv_time's fconvq8 tail; the record's size says
 * whether it is there). Absent, a conv_time is causal (left = P, right = 0) and a pool_time
 * unpadded (0, 0). With P = dilation (kernel_size - 1), 0 <= left <= P and 0 <= right <= P: the
 * record reads its input x_0 .. x_{T-1} with `left` pad steps before it and `right` after it, and
 * gives output n from the padded steps n stride .. n stride + P (PyTorch's Conv1d / MaxPool1d /
 * AvgPool1d with padding (left, right), ceil_mode False: floor((T + left + right - P - 1) / stride)
 * + 1 outputs). conv_time pads with zeros; pool_time's pad steps take no part in a max and count
 * as zeros in an average (divided by k), or with flag RNC_TIMEPAD_EXCLUDE_PAD (average only) are
 * left out of it (divided by the window's real steps: count_include_pad=False, Keras "same").
 * Streaming, output n needs input step n stride + P - left: a stream gives it then (the first
 * P - left steps give no output), and rnc_flush feeds the `right` pad steps at the end of the
 * input (docs/c-api.md, "Look-ahead"). A padded pool_time keeps two counters after its window and
 * countdown: the real steps it has taken (at most P) and the pad steps rnc_flush has fed it. */
#define RNC_TIMEPAD_EXCLUDE_PAD 1u
#define RNC_FIELDS_timepad(X)                                                                     \
    X(timepad, left, 0, U32)                                                                      \
    X(timepad, right, 4, U32)                                                                     \
    X(timepad, flags, 8, U32)

/* log_mel (kind 13, only as the first record): each step's n_fft inputs are one frame of samples
 * (center=False framing: frame f is samples f*hop_length .. f*hop_length + n_fft - 1 of the
 * signal; the caller frames, hop_length is stored for it and the reader), N = n_fft/2 + 1 bins:
 *   u[n] = window[n] x[n]                                      (window: f32 [n_fft])
 *   v[j] = u[j] + u[n_fft - j], w[j] = u[j] - u[n_fft - j] for 0 < j < n_fft - j (v[0] = u[0],
 *       w[0] = 0; v[j] = u[j], w[j] = 0 for j = n_fft - j), j < N (the DFT's symmetry folded)
 *   re = C v, im = S w: dft holds two packed f32 matrices (the layout of docs/rnc-format.md) of
 *       round16(N) rows and N inputs, C[k, j] = cos(2 pi k j / n_fft) then S[k, j] = -sin(...)
 *   p[k] = re[k]^2 + im[k]^2 (power 2) or sqrt of it (power 1)
 *   mel[m] = sum_{j < count_m} fb_weight[o_m + j] p[first_m + j], (first_m, count_m) = fb_span[m]
 *       (u32 pairs, first_m + count_m <= N), o_m = count_0 + .. + count_{m-1}; the weights
 *       (sum of the counts, >= 0; absent when that is 0) are each triangular filter's nonzero span
 *   y[m] = mel[m] (log 0), log(mel[m] + log_offset) (log 1), 10 log10(max(mel[m], amin)) (log 2)
 * log_offset (log 1) and amin (log 2) are finite and > 0, else 0.
 * The C core computes re, im by a real FFT (kernels/f32_fft_generic.c) when n_fft is even, n_fft/2
 * has no prime factor above 5 and the tables are the DFT's (each entry within 2e-6 of column 1's
 * value of its phase, column 1 within 1e-6 of cos / -sin), its twiddles taken from column 1; by
 * the products above otherwise. */
#define RNC_MEL_LOG_NONE 0u
#define RNC_MEL_LOG 1u
#define RNC_MEL_LOG_DB 2u
#define RNC_FILE_MEL_LOGS 3u
#define RNC_FIELDS_rec_log_mel(X)                                                                 \
    X(rec_log_mel, kind, 0, U32)                                                                  \
    X(rec_log_mel, size, 4, U32)                                                                  \
    X(rec_log_mel, n_fft, 8, U32)                                                                 \
    X(rec_log_mel, hop_length, 12, U32)                                                           \
    X(rec_log_mel, n_mels, 16, U32)                                                               \
    X(rec_log_mel, power, 20, U32)                                                                \
    X(rec_log_mel, log, 24, U32)                                                                  \
    X(rec_log_mel, log_offset, 28, F32)                                                           \
    X(rec_log_mel, amin, 32, F32)                                                                 \
    X(rec_log_mel, window, 40, REF)                                                               \
    X(rec_log_mel, dft, 48, REF)                                                                  \
    X(rec_log_mel, fb_span, 56, REF)                                                              \
    X(rec_log_mel, fb_weight, 64, REF)

#define RNC_FIELDS_rec_linear(X)                                                                  \
    X(rec_linear, kind, 0, U32)                                                                   \
    X(rec_linear, size, 4, U32)                                                                   \
    X(rec_linear, in_features, 8, U32)                                                            \
    X(rec_linear, out_features, 12, U32)                                                          \
    X(rec_linear, activation, 16, U32)                                                            \
    X(rec_linear, in_scale, 20, F32)                                                              \
    X(rec_linear, weight, 24, REF)                                                                \
    X(rec_linear, scale, 32, REF)                                                                 \
    X(rec_linear, bias, 40, REF)

/* A block-sparse q8 matrix (v2, layer flags SPARSE_IH / SPARSE_HH) of R rows (G*Hp) and K inputs
 * (Kp = round4(K), groups = Kp/4), cut into blocks of block_rows rows x 4 inputs; only the blocks
 * holding a nonzero weight are stored. One tensor of these parts, each at its offset from the
 * tensor's start:
 *   0                    spq8 (16 bytes)
 *   16                   rowptr: u32 x (row_blocks + 1), rowptr[0] = 0, non-decreasing, last = nnz
 *   s = 16 + 4 (row_blocks+1)  sums: i32 x R, sum_k Wq[r, k] of each row (the kernel sums of the
 *                        unsigned-offset products, as w_hh_sums; checked by the loader)
 *   s + 4 R              cols: u16 x nnz, the input group of each block; strictly increasing
 *                        within a row block, < groups
 *   round64(s + 4 R + 2 nnz) the blocks: nnz x (block_rows * 4) int8, block i of row block b (i in
 *                        rowptr[b] .. rowptr[b+1]) byte r*4 + j = Wq[block_rows b + r, 4 cols[i] + j]
 * nbytes is exactly the end of the blocks; weights are in -127..127 and zero at inputs >= K. The
 * dense matrix is the stored blocks at their places and zero elsewhere; row_blocks * block_rows = R.
 * The gate-shared layout (layer flag SHARED_IH / SHARED_HH; GRU and LSTM, G gates of Hp rows):
 * every gate's matrix has the same zero blocks, block_rows = 16, row_blocks = Hp / 16 (unit
 * blocks), nnz counts entries, each entry the G blocks of one input group of one unit block
 * (G*64 bytes: byte 64 g + 4 r + j = Wq[g Hp + 16 b + r, 4 cols[i] + j]); rowptr, sums (all R
 * rows, gate-major) and cols as above, the blocks part nnz x G x 64 bytes. */
#define RNC_SPQ8_BLOCK_ROWS_MIN 8u
#define RNC_SPQ8_BLOCK_ROWS_MAX 16u /* block_rows is 8 or 16 */
#define RNC_FIELDS_spq8(X)                                                                        \
    X(spq8, block_rows, 0, U32)                                                                   \
    X(spq8, row_blocks, 4, U32)                                                                   \
    X(spq8, groups, 8, U32)                                                                       \
    X(spq8, nnz, 12, U32)

/* ---- precision 3: fully-integer models (rnncore.quant.integer; docs/integer.md) ---------------
 * A v2 file of precision 3 holds recurrent+ [last_step] [linear] records, unidirectional, without
 * block-sparse weights or cell options. Its recurrent record is 48 + 48 + 72 bytes: the fixed part
 * (x_scale, h_scale: the real scales of the int8 input and h, finite > 0; h_scale_reverse 0;
 * w_hh_sums absent), direction 0's cellw with w_ih int8 [G*H][I] and w_hh int8 [G*H][H] row-major
 * (not packed, not padded), s_ih / s_hh absent, b_ih / b_hh int32 [G*H] (zero points folded in,
 * |b| < 2^30), then a cellint (its x_scale, h_scale, gate_scale: the real scales in binary64,
 * finite > 0, so the record's f32 x_scale, h_scale and h_scale_reverse are 0; m_* int32 [G*H]
 * >= 0, e_* int8 [G*H] in -31..30). Its linear record is 48 + 24 bytes: in_scale 0, weight int8
 * [O][F] row-major, scale absent, bias int32 [O], then a linint (out_scale binary64 > 0; m_o
 * int32 [O], e_o int8 [O]). Signed integer fields are 32-bit two's complement in a U32. The host engine runs such a file
 * (RNC_INT8: the integer step of csrc/src/int/ as kernel-table rows); rnncore export-c --target
 * cortex-m compiles it for a microcontroller. */
#define RNC_FILE_INT_MAX_COLS 32768u /* I, H, O (rnc_s8_matvec's RNC_S8_MAX_COLS) */
#define RNC_FILE_INT_MAX_BIAS 1073741823u /* |bias| < 2^30: int32 sums cannot overflow */
/* The largest scales of an integer file: a dequantised state is h_scale (h8 - zp), |h8 - zp| <=
 * 255 < 2^8, and a head output is out_scale y_q, |y_q| <= 2^31, so scales of at most 2^119 and
 * 2^96 keep every dequantised value below 2^127 < FLT_MAX: finite in float32. */
#define RNC_FILE_INT_MAX_H_SCALE_EXP 119
#define RNC_FILE_INT_MAX_OUT_SCALE_EXP 96
#define RNC_CELLINT_TABLE 1u /* the table sigmoid / tanh (GRU, RNN); else gemmlowp's */
/* cellint flag: the model input is int16, symmetric (x = x_scale x16, x_zp 0; TFLite's 16x8
 * activations), first layer only; every W_ih row keeps |b_ih[r]| + 2^15 sum_k |w_ih[r][k]| <=
 * 2^31 - 1 (int32 accumulation). Without it the input is int8, as in files written before. */
#define RNC_CELLINT_INPUT_S16 2u
#define RNC_FIELDS_cellint(X)                                                                     \
    X(cellint, flags, 0, U32)                                                                     \
    X(cellint, x_zp, 4, U32)                                                                      \
    X(cellint, h_zp, 8, U32)                                                                      \
    X(cellint, m_h, 12, U32)                                                                      \
    X(cellint, e_h, 16, U32)                                                                      \
    X(cellint, m_rh, 20, U32)                                                                     \
    X(cellint, e_rh, 24, U32)                                                                     \
    X(cellint, cell_shift, 28, U32)                                                               \
    X(cellint, cell_clip, 32, U32)                                                                \
    X(cellint, x_scale, 40, F64)                                                                  \
    X(cellint, h_scale, 48, F64)                                                                  \
    X(cellint, gate_scale, 56, F64)                                                               \
    X(cellint, m_ih, 64, REF)                                                                     \
    X(cellint, e_ih, 72, REF)                                                                     \
    X(cellint, m_hh, 80, REF)                                                                     \
    X(cellint, e_hh, 88, REF)
#define RNC_FIELDS_linint(X)                                                                      \
    X(linint, out_scale, 0, F64)                                                                  \
    X(linint, m_o, 8, REF)                                                                        \
    X(linint, e_o, 16, REF)

/* ---- the loader's refusals ---------------------------------------------------------------- *
 * Every refusal is one line "<part>: <field>: <problem>" (docs/rnc-format.md): the part is
 * "header", "layer <l> descriptor" (v1), "record <i>" / "record <i> (<kind>)" (v2); the field is a
 * field name of this file ("dir1.w_hh" inside a direction's cellw); the problem is one of the
 * messages below, with its status. The C loader (loader.c) and the Python reader (rnncore/io/rnc.py)
 * both format these texts: %llu / %lld decimal, %llx hex, %s a string, the arguments in order.
 * Rule for the Python parser: one  M(NAME, STATUS, "text")  entry per line. */
#define RNC_MESSAGES(M)                                                                           \
    M(SHORT, TRUNCATED, "buffer of %llu bytes, shorter than the %llu bytes this check needs")     \
    M(MAGIC, MAGIC, "0x%llx, expected 0x4d434e52 (RNCM)")                                          \
    M(VERSION, VERSION, "%llu (this loader reads versions 1 and 2)")                               \
    M(FILE_SIZE_SMALL, CORRUPT, "%llu, smaller than the %llu-byte header")                        \
    M(FILE_SIZE_BIG, TRUNCATED, "%llu, but the buffer has %llu bytes")                            \
    M(CRC, CHECKSUM, "stored 0x%llx, computed 0x%llx")                                             \
    M(BIG_ENDIAN, UNSUPPORTED, "this host is big-endian (the loader reads in place)")             \
    M(EXPECT, CORRUPT, "%llu, expected %llu")                                                      \
    M(RANGE, CORRUPT, "%llu, expected %llu..%llu")                                                 \
    M(RANGE_UNSUPPORTED, UNSUPPORTED, "%llu, the C core runs %llu..%llu")                          \
    M(FLAGS, CORRUPT, "0x%llx has unknown bits (known: 0x%llx)")                                   \
    M(RESERVED, CORRUPT, "byte %llu of the %llu-byte structure is 0x%llx (reserved bytes are 0)")  \
    M(TENSOR_AREA, CORRUPT, "the tensor area would start at %llu, past the end of the file (%llu bytes)") \
    M(REF_ABSENT, CORRUPT, "tensor (offset %llu, %llu bytes) where none belongs (expected 0, 0)") \
    M(REF_BYTES, CORRUPT, "tensor of %llu bytes, expected %llu")                                   \
    M(REF_ALIGN, CORRUPT, "offset %llu is not a multiple of 64")                                   \
    M(REF_BEFORE, CORRUPT, "offset %llu is before the tensor area (from %llu)")                    \
    M(REF_PAST_END, CORRUPT, "offset %llu + %llu bytes past the end of the file (%llu bytes)")     \
    M(REF_COUNT, CORRUPT, "more than %llu tensors")                                                \
    M(OVERLAP, CORRUPT, "bytes %llu..%llu overlap %s (bytes %llu..%llu)")                          \
    M(NOT_FINITE, CORRUPT, "value %llu is NaN or Inf")                                             \
    M(NEGATIVE, CORRUPT, "value %llu is negative")                                                 \
    M(Q8_MIN, CORRUPT, "value %llu is -128 (q8 weights are in -127..127)")                         \
    M(Q16_MIN, CORRUPT, "value %llu is -32768 (16-bit weights are in -32767..32767)")             \
    M(Q16_PAD, CORRUPT, "row %llu: nonzero weight at input %llu >= %llu inputs")                  \
    M(Q8_K, UNSUPPORTED, "%llu padded inputs per row, the q8 kernels take at most %llu")          \
    M(Q4_MIN, CORRUPT, "byte %llu holds nibble 0 (-8; q4 weights are in -7..7, stored + 8)")       \
    M(Q4_PAD, CORRUPT, "byte %llu: input %llu >= %llu inputs is not 0 (nibble 8)")               \
    M(Q4_FORM, UNSUPPORTED, "0x%llx: q4 files run layers without cell options (flag 0x10)")      \
    M(Q4_V1, CORRUPT, "%llu (q4) in a version 1 file, expected 0..1 (q4 needs version 2)")         \
    M(SCALE, CORRUPT, "bits 0x%llx: not a finite value >= 0")                                      \
    M(SCALE_F32, CORRUPT, "bits 0x%llx: nonzero in an f32 file (static scales are q8 only)")       \
    M(SCALE_UNIDIR, CORRUPT, "bits 0x%llx: nonzero in a unidirectional layer")                     \
    M(RESET_AFTER, CORRUPT, "0x%llx: reset_after (0x1) on a layer that is not a GRU")             \
    M(LAYERS, UNSUPPORTED, "more than %llu recurrent layers")                                      \
    M(LAST_BIDIR, CORRUPT, "0x%llx: bidirectional last-step pooling needs a bidirectional last layer") \
    M(MEAN_BIDIR, CORRUPT, "0x%llx: mean pooling (0x2) with the bidirectional flag (0x1), which is last-step pooling's (then with the last-step part 0x10)") \
    M(MEAN_INT, UNSUPPORTED, "0x%llx: mean pooling (0x2) in an integer file (integer models pool the last step)") \
    M(ATTN_FLAGS, CORRUPT, "0x%llx: attention pooling (0x4) with the bidirectional (0x1) or mean (0x2) flag") \
    M(MAX_FLAGS, CORRUPT, "0x%llx: max pooling (0x8) with the attention flag (0x4), or with the bidirectional flag (0x1) without the last-step part (0x10)") \
    M(LAST_FLAGS, CORRUPT, "0x%llx: the last-step part (0x10) needs mean (0x2) and/or max (0x8) pooling and no attention (0x4)") \
    M(MAX_INT, UNSUPPORTED, "0x%llx: max pooling (0x8) in an integer file (integer models pool the last step)") \
    M(ATTN_INT, UNSUPPORTED, "0x%llx: attention pooling (0x4) in an integer file (integer models pool the last step)") \
    M(LAST_BIDIR_ALONE, CORRUPT, "0x%llx: last-step bidirectional (0x8) without last-step (0x4)") \
    M(NONZERO, CORRUPT, "0x%llx, expected 0 without the %s flag")                                  \
    M(HH_SUM, CORRUPT, "direction %llu row %llu is %lld, expected %lld (the sum of its W_hh row)") \
    M(REC_SHORT, CORRUPT, "starts at %llu, %llu bytes before the end of the record list (a record needs 8)") \
    M(REC_SIZE, CORRUPT, "%llu, expected a multiple of 8 in 8..%llu")                              \
    M(REC_END, CORRUPT, "%llu, but the %llu records end at byte %llu")                              \
    M(RECORDS_SIZE, CORRUPT, "%llu, past the end of the file (%llu bytes after the header)")       \
    M(SEQUENCE, UNSUPPORTED, "kind %llu (%s) cannot come %s: the C core runs [embedding | front-end*] recurrent (post* recurrent)* post* [last_step post*] [linear]") \
    M(NO_RECURRENT, UNSUPPORTED, "%llu, no recurrent record: the C core runs [embedding | front-end*] recurrent (post* recurrent)* post* [last_step post*] [linear]") \
    M(FRONT_Q8, UNSUPPORTED, "kind %llu (%s) in a q4 file: the C core runs the per-step records in f32 and q8 files only") \
    M(FRONT_COUNT, UNSUPPORTED, "more than %llu per-step records") \
    M(CONV_GROUPS, CORRUPT, "%llu does not divide in_channels %llu and out_channels %llu") \
    M(CONV_WINDOW, CORRUPT, "frame of %llu samples + padding (%llu, %llu) is shorter than one window of %llu") \
    M(CONV_REFLECT, CORRUPT, "padding (%llu, %llu): reflect padding must be < frame_length %llu") \
    M(MAG_ODD, CORRUPT, "%llu input features, expected an even number (re | im)") \
    M(HALVES_ODD, CORRUPT, "%llu input features, expected an even number (two halves)") \
    M(NORM_EPS, CORRUPT, "bits 0x%llx: expected a finite value > 0") \
    M(INPUT_IDS, CORRUPT, "%llu, expected 0 (an embedding record comes first: the input is token ids)") \
    M(INPUT_FEATURES, CORRUPT, "0 without an embedding record, expected 1..%llu")                  \
    M(OUTPUT_WIDTH, UNSUPPORTED, "%llu output features, the C core runs at most %llu")           \
    M(SPARSE_FORM, CORRUPT, "0x%llx: block-sparse weights need a q8 file, no cell options and not GRU reset_after = 0") \
    M(SPARSE_SHORT, CORRUPT, "tensor of %llu bytes, shorter than its %llu-byte header")            \
    M(SPARSE_ROWPTR, CORRUPT, "row block %llu starts at block %llu, before the previous (%llu)")  \
    M(SPARSE_ROWLEN, CORRUPT, "row block %llu has %llu blocks, more than its %llu input groups")   \
    M(SPARSE_COL, CORRUPT, "block %llu: input group %llu, expected %llu..%llu (increasing, < groups)") \
    M(SPARSE_PAD, CORRUPT, "block %llu: nonzero weight at input %llu >= %llu inputs")            \
    M(SPARSE_SUM, CORRUPT, "row %llu is %lld, expected %lld (the sum of its blocks)") \
    M(SPARSE_SHARED, CORRUPT, "0x%llx: the gate-shared layout needs block-sparse GRU or LSTM weights with 16-row blocks") \
    M(OPT_LSTM, CORRUPT, "0x%llx: %s exists only for an LSTM")                                     \
    M(OPT_REVERSE_BIDIR, CORRUPT, "0x%llx: reverse (0x1) on a bidirectional layer")               \
    M(OPT_REVERSE_OUTPUT, CORRUPT, "0x%llx: reverse_output (0x40) without reverse (0x1)")          \
    M(OPT_CLIP, CORRUPT, "bits 0x%llx: expected a finite value > 0 with the clip flag (0x4), else 0") \
    M(OPT_PARAM, CORRUPT, "bits 0x%llx: not a finite value")                                       \
    M(OPT_UNUSED, CORRUPT, "%llu, expected 0 (a slot this cell does not use)")                     \
    M(OPT_PROJ, CORRUPT, "%llu, expected 0, or 1..%llu for an LSTM (proj_size < hidden_size)") \
    M(LEFT_OUT, UNSUPPORTED, "%llu: %s, which this build of the C core leaves out")                \
    M(PW_PARAM, CORRUPT, "bits 0x%llx: expected %s")                                               \
    M(OPT_LN_FORM, CORRUPT, "0x%llx: layer_norm (0x80) does not combine with %s")                  \
    M(OPT_LN_EPS, CORRUPT, "bits 0x%llx: expected a finite value > 0 (LayerNorm's epsilon)")     \
    M(INT_KIND, UNSUPPORTED, "kind %llu (%s) in an integer file: integer models are recurrent+ [last_step] [linear]") \
    M(INT_FORM, UNSUPPORTED, "0x%llx: integer layers are unidirectional, without block-sparse weights or cell options") \
    M(INT_RANGE, CORRUPT, "%lld, expected %lld..%lld")                                            \
    M(INT_EXPECT, CORRUPT, "%lld, expected %lld")                                                 \
    M(INT_VALUE, CORRUPT, "value %llu is %lld, expected %lld..%lld")                              \
    M(INT_SAME, CORRUPT, "bits 0x%llx, expected 0x%llx (the previous layer's h_scale)")           \
    M(INT_ZERO, CORRUPT, "bits 0x%llx: expected 0 (an integer file's scales are its cellint's and linint's)") \
    M(INT_TABLE_LSTM, CORRUPT, "0x%llx: the table activations (0x1) are for GRU and RNN cells, not an LSTM") \
    M(INT_ACT, UNSUPPORTED, "%llu, integer heads have 0 (none) or 4 (softmax)")                   \
    M(INT_S16_LAYER, CORRUPT, "0x%llx: an int16 input (0x2) is for the first layer only (deeper layers take int8 h)") \
    M(INT_S16_BOUND, CORRUPT, "row %llu: |b_ih| + 2^15 sum |w_ih| is %lld, expected <= %lld (int32 accumulation of an int16 input)") \
    M(CONV_WINDOW_SIZE, UNSUPPORTED, "window of %llu steps x %llu channels, the C core keeps at most %llu floats per stream") \
    M(MEL_UNUSED, CORRUPT, "bits 0x%llx: expected 0 (unused with log = %llu)")                   \
    M(MEL_SPAN, CORRUPT, "filter %llu spans bins %llu..%llu, past the %llu frequency bins") \
    M(RES_SPAN, CORRUPT, "%llu, expected 1..%llu (the per-step and recurrent records right before this one)") \
    M(RES_WIDTH, CORRUPT, "%llu: the record that many back takes %llu features, this one %llu (they must agree)") \
    M(RES_STRIDED, UNSUPPORTED, "%llu: the records it spans include %s, which gives no output at some steps (a residual adds equal steps)") \
    M(INT_SCALE_MAX, CORRUPT, "bits 0x%llx: expected a finite value > 0 and at most 2^%llu (%s)") \
    M(POSITIONS, CORRUPT, "%llu, expected 2 or more dividing the %llu features into positions") \
    M(POS_POOL, UNSUPPORTED, "a last_step after %llu positions per step: the output is their mean at every step") \
    M(SEQ_NORM_SPAN, UNSUPPORTED, "%llu: the records it spans include instance_norm (kind 16), which normalises the whole sequence between them") \
    M(SEQ_NORM_PAD, UNSUPPORTED, "per-step record %llu (%s) pads (%llu, %llu) steps over time: with instance_norm (kind 16) the records over time take right padding 0 and left padding within their window") \
    M(POS_SEQ_NORM, UNSUPPORTED, "%llu positions per step after instance_norm (kind 16): a model takes one of the two") \
    M(EMB_SEQ_NORM, UNSUPPORTED, "kind %llu (instance_norm) after an embedding: the C core normalises whole sequences of input features only")

/* ---- generated C view ----------------------------------------------------------------------- */
#define RNC_LAYOUT_ALL_FIELDS(X)                                                                  \
    RNC_FIELDS_ref(X) RNC_FIELDS_hdr1(X) RNC_FIELDS_desc1(X) RNC_FIELDS_cellw(X) RNC_FIELDS_hdr2(X)                  \
    RNC_FIELDS_rec(X) RNC_FIELDS_rec_embedding(X) RNC_FIELDS_rec_recurrent(X)                      \
    RNC_FIELDS_rec_last_step(X) RNC_FIELDS_rec_linear(X) RNC_FIELDS_spq8(X) RNC_FIELDS_cellopt(X)   \
    RNC_FIELDS_cellln(X) RNC_FIELDS_rec_frame_conv(X) RNC_FIELDS_rec_pointwise(X)                 \
    RNC_FIELDS_rec_magnitude(X) RNC_FIELDS_rec_layer_norm(X) RNC_FIELDS_rec_scale_shift(X)         \
    RNC_FIELDS_cellint(X) RNC_FIELDS_linint(X) RNC_FIELDS_rec_conv_time(X) \
    RNC_FIELDS_rec_log_mel(X) \
    RNC_FIELDS_fconvq8(X) RNC_FIELDS_rec_residual(X) \
    RNC_FIELDS_rec_pool_time(X) \
    RNC_FIELDS_timepad(X) RNC_FIELDS_fconvq16(X) RNC_FIELDS_rec_mul_halves(X) RNC_FIELDS_attnpool(X) \
    RNC_FIELDS_rec_concat(X) RNC_FIELDS_rec_positions(X) RNC_FIELDS_rec_instance_norm(X)

/* sizes of the field types (CELLW: an embedded cellw structure) */
#define RNC_TYPE_SIZE_U32 4u
#define RNC_TYPE_SIZE_F32 4u
#define RNC_TYPE_SIZE_F64 8u
#define RNC_TYPE_SIZE_REF 8u
#define RNC_TYPE_SIZE_CELLW 48u

/* RNC_SIZE_<struct> and RNC_AT_<struct>_<field> (byte offset) constants */
#define RNC__SIZE_ENUM(s, n) RNC_SIZE_##s = n,
enum rnc_layout_sizes { RNC_LAYOUT_STRUCTS(RNC__SIZE_ENUM) RNC_SIZE_END_ };
#define RNC__AT_ENUM(s, f, off, t) RNC_AT_##s##_##f = off,
enum rnc_layout_offsets { RNC_LAYOUT_ALL_FIELDS(RNC__AT_ENUM) RNC_AT_END_ };

static inline uint32_t rnc__rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline float rnc__rdf32(const unsigned char *p)
{
    const uint32_t u = rnc__rd32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline double rnc__rdf64(const unsigned char *p)
{
    const uint64_t u = (uint64_t)rnc__rd32(p) | ((uint64_t)rnc__rd32(p + 4) << 32);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* Accessors, one per field, on a pointer to the structure's first byte:
 *   uint32_t rnc_<struct>_<field>(p)               U32
 *   float rnc_<struct>_<field>(p)                  F32
 *   double rnc_<struct>_<field>(p)                 F64
 *   const unsigned char *rnc_<struct>_<field>(p)   REF and CELLW (the bytes of the sub-structure) */
#define RNC__ACC_U32(s, f, off)                                                                   \
    static inline uint32_t rnc_##s##_##f(const unsigned char *p) { return rnc__rd32(p + (off)); }
#define RNC__ACC_F32(s, f, off)                                                                   \
    static inline float rnc_##s##_##f(const unsigned char *p) { return rnc__rdf32(p + (off)); }
#define RNC__ACC_F64(s, f, off)                                                                   \
    static inline double rnc_##s##_##f(const unsigned char *p) { return rnc__rdf64(p + (off)); }
#define RNC__ACC_REF(s, f, off)                                                                   \
    static inline const unsigned char *rnc_##s##_##f(const unsigned char *p) { return p + (off); }
#define RNC__ACC_CELLW(s, f, off) RNC__ACC_REF(s, f, off)
#define RNC__ACCESSOR(s, f, off, t) RNC__ACC_##t(s, f, off)
RNC_LAYOUT_ALL_FIELDS(RNC__ACCESSOR)

/* the fields of one structure as (offset, size) spans, for the reserved-bytes check */
typedef struct rnc_span {
    uint16_t off, size;
} rnc_span;
#define RNC__SPAN(s, f, off, t) {off, RNC_TYPE_SIZE_##t},

#endif /* RNC_LAYOUT_H */
