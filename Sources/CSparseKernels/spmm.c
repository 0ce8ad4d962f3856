// SpMM: the CSR row kernels and the panel kernels (see spmm_body.h), instantiated per instruction
// set. The AVX2 and AVX-512 forms carry function-level target attributes (the library needs no
// compiler flags) and run only where dispatch.c found the CPU features; NEON is the baseline of
// aarch64 and compiled only there.
#include "internal.h"

// Four column indices from one load: 16-bit indices come four to a 64-bit word (the load that
// replaces four, which matters because the panel kernel is bound by issuing loads), 32-bit ones
// as they are.
static inline __attribute__((always_inline)) void tsk_idx4_uint16_t(const uint16_t *ind, int64_t *c) {
    uint64_t a;
    memcpy(&a, ind, 8);
    c[0] = (int64_t)(a & 0xFFFF); c[1] = (int64_t)((a >> 16) & 0xFFFF);
    c[2] = (int64_t)((a >> 32) & 0xFFFF); c[3] = (int64_t)(a >> 48);
}
static inline __attribute__((always_inline)) void tsk_idx4_uint32_t(const uint32_t *ind, int64_t *c) {
    c[0] = ind[0]; c[1] = ind[1]; c[2] = ind[2]; c[3] = ind[3];
}

#define TSK_BODY "spmm_body.h"
#include "instantiate.h"
