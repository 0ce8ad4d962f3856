// Instantiates the kernel body named by TSK_BODY (a header, e.g. "spmm_body.h") once per
// instruction set this target can run: scalar everywhere, AVX2 and AVX-512 on x86-64, NEON on
// aarch64. simd.h defines the vector primitives of each TSK_ISA in turn. No include guard: a
// source includes it once per body.
#ifndef TSK_BODY
#error "define TSK_BODY before including instantiate.h"
#endif

#define TSK_ISA TSK_ISA_SCALAR
#include "simd.h"
#include TSK_BODY
#undef TSK_ISA

#if TSK_X86
#define TSK_ISA TSK_ISA_AVX2
#include "simd.h"
#include TSK_BODY
#undef TSK_ISA

#define TSK_ISA TSK_ISA_AVX512
#include "simd.h"
#include TSK_BODY
#undef TSK_ISA
#endif

#if TSK_ARM64
#define TSK_ISA TSK_ISA_NEON
#include "simd.h"
#include TSK_BODY
#undef TSK_ISA
#endif

#undef TSK_BODY
