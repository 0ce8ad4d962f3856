#include "CSparseKernels.h"
