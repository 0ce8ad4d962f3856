#!/usr/bin/env bash
# Topiary against existing sparse libraries, on the cells of the compressed-inference issue:
# builds competitors.c (dense OpenBLAS, MKL inspector-executor, librsb, a simple hand-written AVX2
# CSR kernel, and Topiary's own C kernels from Sources/CSparseKernels, all in one process on the
# same W and X), runs every measurement, then writes results/table.md. Not part of the package or
# of CI.
#
# Needs (Debian 12):
#   apt-get install -y gcc clang libopenblas-dev librsb-dev   # OpenBLAS 0.3.21, librsb 1.3.0.2
#   python3 -m pip install mkl mkl-include intel-openmp        # oneMKL: libmkl_rt.so.3 + mkl_spblas.h
#   python3 -m pip install numpy scipy
#
# Usage:  bash Benchmarks/Competitors/run.sh            # build + all runs (~20 min on a quiet 2-core machine)
#         SKIP_RUN=1 bash Benchmarks/Competitors/run.sh # build only
#
# Every timing process runs under `nice -n 10`, one after the other; each also waits (up to 90 s)
# for the machine to be quiet before each measured path, re-measures a path (at most 3 times) if
# other processes used more than 0.15 cores during it, and measures every cell in 3 rounds,
# reporting each path's lowest round median. OPENBLAS_CORETYPE is left as found.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PY:-python3}
PYROOT=${PYROOT:-$("$PY" -c 'import sys; print(sys.prefix)')}
MKLINC="$PYROOT/include"
MKLLIB="$PYROOT/lib"          # libmkl_rt.so.3, libmkl_core, threading layers, libiomp5 (pip)
KERNELS=../../Sources/CSparseKernels
BUILD=${BUILD:-.build-competitors}
mkdir -p "$BUILD"

# Topiary's kernels compiled as SwiftPM compiles them in release (clang -O2).
# One relocatable object from the kernels' files (dispatch, packing, SpMM, SELL, pool, dense).
clang -O2 -fPIC -I"$KERNELS/include" -nostdlib -r "$KERNELS"/*.c -o "$BUILD/kernels.o"
# OpenBLAS, librsb and Topiary are linked; MKL is only dlopen'ed (RTLD_LOCAL) at run time.
gcc -O2 -Wall -Wextra -DWITH_TOPIARY -I"$MKLINC" -I"$KERNELS/include" -o "$BUILD/competitors" competitors.c \
    "$BUILD/kernels.o" -lopenblas -lrsb -ldl -lm -lpthread
# Without librsb: no GNU OpenMP (libgomp) in the process, so mkl_rt uses its default Intel OpenMP
# layer (libiomp5). With libgomp present mkl_rt switches to GNU OpenMP, and forcing Intel OpenMP
# there gives wrong results.
gcc -O2 -Wall -Wextra -DNO_RSB -I"$MKLINC" -o "$BUILD/competitors_nrsb" competitors.c -lopenblas -ldl -lm -lpthread
echo "built $BUILD/competitors $BUILD/competitors_nrsb"
[ "${SKIP_RUN:-0}" = 1 ] && exit 0

OUT=results
mkdir -p "$OUT"
rm -f "$OUT"/*.csv "$OUT"/*.log "$OUT"/table.md
export LD_LIBRARY_PATH="$MKLLIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
MKLRT="$MKLLIB/libmkl_rt.so.3"

{
  echo "date: $(date -u +%FT%TZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc)"
  echo "gcc: $(gcc --version | head -1)"
  echo "openblas: $(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null)"
  echo "librsb: $(dpkg-query -W -f='${Version}' librsb0 2>/dev/null)"
  echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}"
  "$PY" -m pip list 2>/dev/null | grep -E '^(mkl|intel-openmp|numpy|scipy) ' || true
} | tee "$OUT/env.log"

# One timing process per (shape, threads, sparsity) slice of the cells.
run_c () {   # binary, tag, extra env, extra args...
  local bin=$1 tag=$2 envs=$3; shift 3
  local slice shape thr sps t0
  for slice in "4096x4096 2 0.9" "4096x4096 2 0.95" "4096x4096 1 0.9" "4096x4096 1 0.95" \
               "300x784 2,1 0.9" "300x784 2,1 0.95"; do
    read -r shape thr sps <<< "$slice"
    echo "=== $tag: $shape threads $thr sparsity $sps (${envs:-no extra env})" | tee -a "$OUT/$tag.log"
    t0=$SECONDS
    env $envs nice -n 10 "$bin" --tag "$tag" --csv "$OUT/$tag.csv" --mkl "$MKLRT" --rounds 3 \
        --shapes "$shape" --threads "$thr" --sparsities "$sps" "$@" 2>&1 | tee -a "$OUT/$tag.log"
    echo "=== took $((SECONDS - t0)) s" | tee -a "$OUT/$tag.log"
  done
}

# 1. main run: dense OpenBLAS + MKL (GNU OpenMP layer, as mkl_rt picks it here) + librsb + Topiary
#    + the simple hand-written AVX2 kernel (batches that are multiples of 8)
run_c "$BUILD/competitors" main "" --paths dense,mkl,rsb,topiary,simple
# 2. dense OpenBLAS + MKL on its default Intel OpenMP layer (binary without librsb)
run_c "$BUILD/competitors_nrsb" mkl-intel-omp "" --paths dense,mkl
# 3. as 1 for MKL, with MKL_ENABLE_INSTRUCTIONS=AVX2 (AMD CPU: does it change the dispatch?)
run_c "$BUILD/competitors" mkl-avx2env "MKL_ENABLE_INSTRUCTIONS=AVX2" --paths dense,mkl
# 4. SciPy (single-threaded) with numpy's dense W @ X restricted to 1 thread
echo "=== scipy (OPENBLAS_NUM_THREADS=1)"
for shape in 4096x4096 300x784; do
  OPENBLAS_NUM_THREADS=1 nice -n 10 "$PY" scipy_bench.py bench --tag scipy --csv "$OUT/scipy.csv" --rounds 3 \
      --shapes $shape 2>&1 | tee -a "$OUT/scipy.log"
done

"$PY" scipy_bench.py summarize "$OUT"/main.csv "$OUT"/mkl-intel-omp.csv "$OUT"/mkl-avx2env.csv "$OUT"/scipy.csv \
    | tee "$OUT/table.md"
