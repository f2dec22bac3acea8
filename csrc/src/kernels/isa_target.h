/* Which optional x86 instruction-set groups (sources.mk OPTIONAL_GROUPS) this translation unit
 * is compiled for, as one macro per group whatever the compiler calls the features:
 *
 *   RNC_TARGET_X86_AMX      AMX-TILE + AMX-INT8 + AVX-512 VNNI (sources.mk X86_AMX_FLAGS)
 *                           GCC: __AMX_TILE__ __AMX_INT8__, clang: __AMXTILE__ __AMXINT8__
 *                           (or AVX-512 VNNI with RNC_AMX_EMULATE_LIBRARY: the tiles in C)
 *   RNC_TARGET_X86_AVXVNNI  AVX-VNNI (VEX vpdpbusd) + AVX2 (sources.mk X86_AVXVNNI_FLAGS)
 *                           GCC and clang: __AVXVNNI__
 *
 * The group's kernel files compile their bodies under these macros, and the flag probe of
 * csrc/Makefile and setup.py compiles this header with the group's flags and requires the macro:
 * a compiler that accepts the flags without announcing the features has the group left out
 * (-DRNC_NO_<GROUP>), and a group file compiled for the library without its features is an error
 * rather than an empty object whose kernel-table rows would not link. */
#ifndef RNC_ISA_TARGET_H
#define RNC_ISA_TARGET_H

#if (defined(__AMX_TILE__) || defined(__AMXTILE__)) && (defined(__AMX_INT8__) || defined(__AMXINT8__)) \
    && defined(__AVX512VNNI__)
#define RNC_TARGET_X86_AMX 1
#elif defined(RNC_AMX_EMULATE_LIBRARY) && defined(__AVX512VNNI__)
#define RNC_TARGET_X86_AMX 1 /* the tiles emulated in C (make test-amx-emulated) */
#endif

#if defined(__AVXVNNI__) && defined(__AVX2__)
#define RNC_TARGET_X86_AVXVNNI 1
#endif

#endif
