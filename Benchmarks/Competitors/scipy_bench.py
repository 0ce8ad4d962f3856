#!/usr/bin/env python3
"""SciPy / numpy side of the Topiary competitor benchmark.

  python3 scipy_bench.py bench [--csv FILE] [--tag NAME] [--shapes 4096x4096,300x784]
                               [--batches 1,128] [--sparsities 0.9,0.95]
      Times scipy.sparse.csr_array @ X (single-threaded) and, as the in-run
      dense baseline, numpy's W @ X on the masked dense W (numpy's bundled
      OpenBLAS; its thread count comes from OPENBLAS_NUM_THREADS, which run.sh
      sets to 1).  W and X are bit-identical to those of competitors.c (same
      counter-based splitmix64 generator, see there).

  python3 scipy_bench.py summarize CSV... > table.md
      Builds the README.md tables from the CSV files of competitors.c and of
      the bench mode.

Timing rule (same as competitors.c): warm-up >= 3 calls and >= 20 ms, then
>= 11 timed calls and >= 0.5 s, median of the per-call times
(time.perf_counter = CLOCK_MONOTONIC on Linux).  Between paths: sleep >= 100 ms
and until the machine is quiet (shared machine).  All paths of a cell are
measured in --rounds rounds (default 3); each reports its lowest round median.
"""
import argparse
import csv
import math
import os
import sys
import time

M64 = (1 << 64) - 1


# ---------------------------------------------------------------- generator
def mix64_int(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def mix64_np(z):
    import numpy as np
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def keys(stream, n):
    import numpy as np
    base = np.uint64(mix64_int(stream))
    return mix64_np(base + np.arange(n, dtype=np.uint64))


def unif(h):
    import numpy as np
    return (((h >> np.uint64(40)).astype(np.float64) + 0.5) * (1.0 / 8388608.0) - 1.0).astype(np.float32)


def llround(x):  # C llround for x >= 0
    return int(math.floor(x + 0.5))


def stream_w(M, K, s):
    return ((M * 100003 + K) * 1000 + llround(s * 1000.0)) & M64


def stream_x(K, B):
    return 0x5800000000 + K * 4096 + B


def make_weight(M, K, s):
    import numpy as np
    n = M * K
    zeros = llround(s * float(M) * float(K))
    sid = stream_w(M, K, s)
    k = keys(sid, n)
    thr = np.partition(k, zeros - 1)[zeros - 1]
    is_zero = k <= thr
    del k
    W = unif(keys(sid + 1, n))
    W[is_zero] = 0.0
    return W.reshape(M, K), n - zeros


def make_x(K, B):
    return unif(keys(stream_x(K, B), K * B)).reshape(K, B)


# ---------------------------------------------------------------- machine load
def machine_busy_s():
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except OSError:
        return 0.0
    tick = 1.0 / os.sysconf("SC_CLK_TCK")
    return tick * (v[0] + v[1] + v[2] + v[5] + v[6] + v[7])


MAX_WAIT = 90.0


def gap():
    t0 = time.perf_counter()
    time.sleep(0.1)
    warned = False
    while True:
        c0, m0 = time.process_time(), machine_busy_s()
        time.sleep(0.1)
        own = time.process_time() - c0
        foreign = machine_busy_s() - m0 - own
        if own < 0.002 and foreign < 0.015:
            break
        if time.perf_counter() - t0 > MAX_WAIT:
            print("# gap: machine still busy after %.0f s, going on" % (time.perf_counter() - t0))
            break
        if not warned and time.perf_counter() - t0 > 2.0:
            print("# gap: waiting for a quiet machine (foreign load %.2f cores)..." % (foreign / 0.1), flush=True)
            warned = True
    if warned:
        print("# gap: waited %.1f s" % (time.perf_counter() - t0))


# ---------------------------------------------------------------- timing
def time_once(fn):
    t0 = time.perf_counter()
    n = 0
    while n < 3 or time.perf_counter() - t0 < 0.020:
        out = fn()
        n += 1
    times = []
    w0, c0, m0 = time.perf_counter(), time.process_time(), machine_busy_s()
    while len(times) < 11 or time.perf_counter() - w0 < 0.5:
        a = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - a)
        if len(times) >= 200000:
            break
    wall = time.perf_counter() - w0
    cpu = time.process_time() - c0
    busy = machine_busy_s() - m0
    times.sort()
    n = len(times)
    med = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
    return dict(med_ms=1e3 * med, min_ms=1e3 * times[0], n=n, cpu_util=cpu / wall,
                bg=max(0.0, (busy - cpu) / wall)), out


def time_op(fn):
    best = None
    for k in (1, 2, 3):
        if k > 1:
            gap()
        t, out = time_once(fn)
        t["tries"] = k
        if best is None or t["bg"] < best[0]["bg"]:
            best = (t, out)
        if t["bg"] <= 0.15:
            break
    return best


def max_rel_err(Y, ref, scl):
    import numpy as np
    d = np.abs(Y.astype(np.float64) - ref)
    r = np.where(scl > 0, d / np.where(scl > 0, scl, 1.0), d)
    m = float(np.max(r))
    return m if not math.isnan(m) else float("inf")


def numpy_blas():
    """Best effort: config + core name of the OpenBLAS bundled with numpy."""
    import ctypes
    import glob
    import numpy as np
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "*openblas*"))
    try:
        lib = ctypes.CDLL(libs[0])
        res = []
        for name in ("scipy_openblas_get_config64_", "scipy_openblas_get_corename64_"):
            f = getattr(lib, name)
            f.restype = ctypes.c_char_p
            res.append(f().decode())
        return " | core ".join(res)
    except (IndexError, OSError, AttributeError):
        return "unknown"


CSV_HEAD = ("run,shape,M,K,B,threads,sparsity,lib,variant,layout,median_ms,min_ms,calls,dense_ms,"
            "speedup,max_rel_err,ok,cpu_util,bg_cores,tries,round_medians_ms,note").split(",")


def bench(args):
    import numpy as np
    import scipy
    import scipy.sparse as sp
    global MAX_WAIT
    MAX_WAIT = args.max_wait
    threads = int(os.environ.get("OPENBLAS_NUM_THREADS", "0") or 0)
    print("# numpy %s scipy %s OPENBLAS_NUM_THREADS=%s numpy BLAS: %s" % (
        np.__version__, scipy.__version__, os.environ.get("OPENBLAS_NUM_THREADS", "(unset)"), numpy_blas()))
    # numpy's OpenBLAS (0.3.31, like Debian's 0.3.21 in competitors.c) runs a
    # small single-thread sgemm ~2.4x slower until a larger sgemm has run in the
    # process (300x784x128: 3.9 ms before, 1.6 ms after): one 512^3 first.
    a = np.ones((512, 512), dtype=np.float32)
    t0 = time.perf_counter()
    a @ a
    print("# numpy start-up 512^3 sgemm: %.2f ms" % (1e3 * (time.perf_counter() - t0)))
    fresh = not os.path.exists(args.csv)
    fcsv = open(args.csv, "a", newline="")
    wr = csv.writer(fcsv)
    if fresh:
        wr.writerow(CSV_HEAD)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    for (M, K) in shapes:
        for s in [float(v) for v in args.sparsities.split(",")]:
            t0 = time.perf_counter()
            W, nnz = make_weight(M, K, s)
            A = sp.csr_array(W)
            assert A.nnz == nnz, (A.nnz, nnz)
            W64 = W.astype(np.float64)
            print("# W %dx%d s=%.2f nnz=%d checksum=%.6f (built in %.1fs)" % (
                M, K, s, nnz, float(W64.sum()), time.perf_counter() - t0), flush=True)
            for B in [int(v) for v in args.batches.split(",")]:
                X = make_x(K, B)
                X64 = X.astype(np.float64)
                ref = W64 @ X64
                scl = np.abs(W64) @ np.abs(X64)
                x = np.ascontiguousarray(X[:, 0]) if B == 1 else X
                Xbm = np.ascontiguousarray(X.T)
                # paths of this cell: (lib, variant, layout, fn, to_row_major, note)
                paths = []
                if B == 1:
                    paths.append(("numpy", "matmul", "vec", lambda: W @ x, lambda Y: Y.reshape(M, 1), "W@x (gemv)"))
                else:
                    paths.append(("numpy", "matmul", "row", lambda: W @ X, lambda Y: Y, "W@X"))
                    paths.append(("numpy", "matmul", "col", lambda: Xbm @ W.T, lambda Y: Y.T, "Xbm@W.T"))
                paths.append(("scipy", "csr_array", "vec" if B == 1 else "row", lambda: A @ x,
                              lambda Y: Y.reshape(M, B), "csr_array @ X (single-threaded)"))
                res = [dict(meds=[], best=None, err=0.0) for _ in paths]
                for rnd in range(args.rounds):
                    for (lib, var, lay, fn, conv, note), st in zip(paths, res):
                        gap()
                        t, Y = time_op(fn)
                        st["err"] = max(st["err"], max_rel_err(conv(Y), ref, scl))
                        st["meds"].append(t["med_ms"])
                        if st["best"] is None or t["med_ms"] < st["best"]["med_ms"]:
                            st["best"] = t
                dense = min(st["best"]["med_ms"] for (lib, *_), st in zip(paths, res) if lib == "numpy")
                rows = [(pth[0], pth[1], pth[2], st["best"], st["err"], pth[5], st["meds"])
                        for pth, st in zip(paths, res)]
                for lib, var, lay, t, err, note, meds in rows:
                    speed = dense / t["med_ms"]
                    ok = err <= 1e-4
                    rounds = "/".join("%.4g" % v for v in meds)
                    print("%-9s B=%-3d t=%d s=%.2f  %-26s %9.4f ms  x%-6.2f err %.1e %s cpu %.2f bg %.2f%s rounds %s ms  %s"
                          % ("%dx%d" % (M, K), B, threads, s, "%s:%s:%s" % (lib, var, lay), t["med_ms"], speed,
                             err, "ok " if ok else "BAD", t["cpu_util"], t["bg"],
                             "(NOISY)" if t["bg"] > 0.15 else "", rounds, note), flush=True)
                    wr.writerow([args.tag, "%dx%d" % (M, K), M, K, B, threads, "%.2f" % s, lib, var, lay,
                                 "%.6f" % t["med_ms"], "%.6f" % t["min_ms"], t["n"], "%.6f" % dense,
                                 "%.4f" % speed, "%.3e" % err, int(ok), "%.3f" % t["cpu_util"],
                                 "%.3f" % t["bg"], t["tries"], rounds, note])
                    fcsv.flush()
    fcsv.close()


# ---------------------------------------------------------------- summary
def summarize(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            rows += list(csv.DictReader(f))
    for r in rows:
        r["median_ms"] = float(r["median_ms"])
        r["dense_ms"] = float(r["dense_ms"])
        r["speedup"] = float(r["speedup"])
        r["bg_cores"] = float(r["bg_cores"])
        r["ok"] = r["ok"] == "1"

    def cell_key(r):
        return (r["shape"], int(r["B"]), float(r["sparsity"]), int(r["threads"]))

    def best(sel):
        sel = [r for r in sel if r["ok"] and r["median_ms"] > 0]
        return min(sel, key=lambda r: r["median_ms"]) if sel else None

    def fmt(r, with_cfg=True):
        if r is None:
            return "—"
        cfg = ""
        if with_cfg:
            cfg = " " + r["variant"] + "/" + r["layout"]
            if r["lib"] == "mkl":
                cfg += {"mkl-intel-omp": "/iomp", "mkl-avx2env": "/gomp+AVX2env"}.get(r["run"], "/gomp")
        noisy = " (noisy)" if r["bg_cores"] > 0.15 else ""
        return "%.4g ms ×%.2f%s%s" % (r["median_ms"], r["speedup"], cfg, noisy)

    cells = sorted({cell_key(r) for r in rows}, key=lambda k: (-int(k[0].split("x")[0]), k[1], k[2], -k[3]))
    out = ["Times are medians; ×N = speedup over the dense OpenBLAS baseline measured in the same process "
           "(for SciPy: over numpy's dense W @ X in its own process, then over the C OpenBLAS dense of the main run). "
           "'best' = lowest time among the sparse libraries, with its speedup over the main run's dense. "
           "MKL (best config) is the lowest over MKL_DYNAMIC default/false, GNU (gomp) or Intel (iomp) OpenMP, "
           "and with/without MKL_ENABLE_INSTRUCTIONS=AVX2 (which changes nothing: same libmkl_def kernels)."]
    for thr in (2, 1):
        out.append("\n### %d thread%s\n" % (thr, "s" if thr > 1 else ""))
        out.append("| W | B | s | dense OpenBLAS | MKL (best config) | MKL, MKL_ENABLE_INSTRUCTIONS=AVX2 "
                   "| librsb (best) | SciPy csr_array (1 thread) | simple AVX2 kernel | best library "
                   "| Topiary (same process as dense) |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for key in cells:
            if key[3] != thr:
                continue
            rs = [r for r in rows if cell_key(r) == key]
            main = [r for r in rs if r["run"] == "main"]
            dense = best([r for r in main if r["lib"] == "openblas"])
            mkl = best([r for r in rs if r["lib"] == "mkl"])  # any run: same kernels (libmkl_def) in all
            mkl_avx2 = best([r for r in rs if r["lib"] == "mkl" and r["run"] == "mkl-avx2env"])
            rsb = best([r for r in rs if r["lib"] == "rsb"])
            sci = best([r for r in rs if r["lib"] == "scipy"])
            npd = best([r for r in rs if r["lib"] == "numpy"])
            simple = best([r for r in rs if r["lib"] == "simple"])
            cands = [(r["median_ms"], name) for r, name in
                     ((mkl, "MKL"), (rsb, "librsb"), (sci, "SciPy"), (simple, "simple AVX2")) if r]
            bestlib = "—"
            if cands:
                ms, name = min(cands)
                bestlib = "**%s** %.4g ms" % (name, ms)
                if dense:
                    bestlib += " ×%.2f" % (dense["median_ms"] / ms)
            dense_s = "%.4g ms (%s)" % (dense["median_ms"], dense["variant"] + "/" + dense["layout"]) if dense else "—"
            sci_s = "—"
            if sci:
                sci_s = "%.4g ms ×%.2f vs numpy %.4g ms" % (sci["median_ms"], sci["speedup"],
                                                          npd["median_ms"] if npd else float("nan"))
                if dense:
                    sci_s += "; ×%.2f vs C dense" % (dense["median_ms"] / sci["median_ms"])
            top = best([r for r in main if r["lib"] == "topiary"])
            out.append("| %s | %d | %.2f | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                key[0], key[1], key[2], dense_s, fmt(mkl), fmt(mkl_avx2), fmt(rsb), sci_s,
                fmt(simple, with_cfg=False), bestlib, fmt(top, with_cfg=False)))
    print("\n".join(out))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd")
    b = sub.add_parser("bench")
    b.add_argument("--csv", default="results_scipy.csv")
    b.add_argument("--tag", default="scipy")
    b.add_argument("--shapes", default="4096x4096,300x784")
    b.add_argument("--batches", default="1,128")
    b.add_argument("--sparsities", default="0.9,0.95")
    b.add_argument("--max-wait", type=float, default=90.0)
    b.add_argument("--rounds", type=int, default=3)
    s = sub.add_parser("summarize")
    s.add_argument("csv", nargs="+")
    a = ap.parse_args()
    if a.cmd == "summarize":
        summarize(a.csv)
    else:
        if a.cmd is None:
            a = ap.parse_args(["bench"] + sys.argv[1:])
        bench(a)


if __name__ == "__main__":
    main()
