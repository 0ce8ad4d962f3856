// Not API: the C interface of OpenBLAS (cblas) and LAPACKE, for Topiary's BLAS wrapper only.
#ifndef TOPIARY_CBLAS_SHIM_H
#define TOPIARY_CBLAS_SHIM_H
#include <cblas.h>
#include <lapacke.h>
#endif
