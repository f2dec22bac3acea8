/* cell_template.h's epilogue hooks of the ARM cells (cells_neon.c, cells_neondot.c and the q4,
 * block-sparse and gate-shared files), included right before cell_template.h: on aarch64 the
 * intrinsics epilogue of epilogue_neon.h, the same bits as the template's scalar C; at -Os only
 * its quantiser (the template's portable update, the same bits, ~17 kB less). armv7 keeps the
 * template's scalar C (epilogue_neon.h says why). */
#if defined(__aarch64__)
#include "epilogue_neon.h"
#if !defined(__OPTIMIZE_SIZE__)
#define RNC_CELL_UPDATE rnc_neon_cell_update
#define RNC_Q8_UPDATE rnc_neon_q8_update
#endif
#define RNC_QUANTIZE_ROW rnc_neon_quantize_row
#endif
