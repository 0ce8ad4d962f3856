// Not API: zlib, for reading gzip-compressed IDX files.
#ifndef TOPIARY_CZLIB_SHIM_H
#define TOPIARY_CZLIB_SHIM_H
#include <zlib.h>
#endif
