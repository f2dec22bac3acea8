/* The integer step's rows for one target, chosen at compile time like the products'
 * (s8_kernel_list.h):
 *
 *   X(function, isa)    every step this target compiles, all with rnc_int_cell_step's contract
 *
 *   rnc_int_cell_step      portable C, line for line the NumPy spec (int_cells.c), every target
 *   rnc_int_cell_step_dsp  Armv7E-M / Armv8-M DSP: the elementwise work on whole gate blocks
 *                          with single-multiply fixed-point helpers (int_cells_dsp.c)
 *   rnc_int_cell_step_mve  Armv8.1-M MVE: the elementwise work on 8 / 4 lanes (int_cells_mve.c)
 *
 * Each takes its products as an rnc_s8_matvec_fn (any row of s8_kernel_list.h), and each has a
 * rnc_int_cell_run<_isa> twin without the per-call rnc_int_cell_check (rnncore_int.h: for a cell
 * validated once). RNC_INT_CELL_STEP / RNC_INT_CELL_RUN and RNC_S8_MATVEC name what this
 * target's code calls: the widest rows it has. */
#ifndef RNC_INT_KERNEL_LIST_H
#define RNC_INT_KERNEL_LIST_H

#include "rnncore_int.h"
#include "s8_kernel_list.h"

#if defined(RNC_S8_HAVE_DSP)
int rnc_int_cell_step_dsp(const rnc_int_cell *c, rnc_s8_matvec_fn matvec, const void *x8,
                          int8_t *h8, int16_t *s16, void *scratch, size_t scratch_bytes);
int rnc_int_cell_run_dsp(const rnc_int_cell *c, rnc_s8_matvec_fn matvec, const void *x8,
                         int8_t *h8, int16_t *s16, void *scratch, size_t scratch_bytes);
#define RNC_INT_STEPS_DSP(X) X(rnc_int_cell_step_dsp, "dsp")
#else
#define RNC_INT_STEPS_DSP(X)
#endif

#if defined(RNC_S8_HAVE_MVE)
int rnc_int_cell_step_mve(const rnc_int_cell *c, rnc_s8_matvec_fn matvec, const void *x8,
                          int8_t *h8, int16_t *s16, void *scratch, size_t scratch_bytes);
int rnc_int_cell_run_mve(const rnc_int_cell *c, rnc_s8_matvec_fn matvec, const void *x8,
                         int8_t *h8, int16_t *s16, void *scratch, size_t scratch_bytes);
#define RNC_INT_STEPS_MVE(X) X(rnc_int_cell_step_mve, "mve")
#else
#define RNC_INT_STEPS_MVE(X)
#endif

#define RNC_INT_STEPS(X) X(rnc_int_cell_step, "portable") RNC_INT_STEPS_DSP(X) RNC_INT_STEPS_MVE(X)

#if defined(RNC_S8_HAVE_MVE)
#define RNC_INT_CELL_STEP rnc_int_cell_step_mve
#define RNC_INT_CELL_RUN rnc_int_cell_run_mve
#elif defined(RNC_S8_HAVE_DSP)
#define RNC_INT_CELL_STEP rnc_int_cell_step_dsp
#define RNC_INT_CELL_RUN rnc_int_cell_run_dsp
#else
#define RNC_INT_CELL_STEP rnc_int_cell_step
#define RNC_INT_CELL_RUN rnc_int_cell_run
#endif

#endif
