/// The number of threads Topiary uses unless told otherwise: one default for training
/// (``Trainer``), ``Chain`` and ``CompiledNetwork``.
///
/// Dense products run on OpenBLAS, whose thread count is process-wide; ``count`` reads and sets
/// it. It starts at OpenBLAS's own default: the `OPENBLAS_NUM_THREADS` environment variable when
/// set, else the processors the process may use. A ``CompiledNetwork`` compiled without an
/// explicit `threads:` takes ``count`` at compile time for its sparse kernels too.
///
/// Results depend on the thread count only through the order of floating-point sums: the same
/// seed and the same count give the same bits.
///
/// ```swift
/// Threads.count = 2                              // training, Chain and new compiled networks
/// let plan = try CompiledNetwork(net, batchSize: 128)   // 2 threads
/// ```
public enum Threads {
    /// The default thread count (at least 1).
    ///
    /// The corresponding C functions are `openblas_get_num_threads` and `openblas_set_num_threads`.
    public static var count: Int {
        get { BLAS.threadCount }
        set { BLAS.threadCount = max(1, newValue) }
    }
}

extension Threads {
    /// Elements per chunk of ``forEachChunk(count:chunk:cost:_:)``'s default: 16 K `Float`s (64 KB
    /// per stream, a share of the L2 cache) are long enough to amortise a claim and short enough
    /// to balance two to sixteen threads over a 300×784 weight.
    static let elementChunk = 16 * 1024

    /// Runs `body(range)` over `0..<count` cut into consecutive ranges of `chunk` (the last one
    /// shorter), on up to ``count`` threads of the kernels' pool, which claim ranges dynamically.
    ///
    /// The ranges depend on `count` and `chunk` only, never on the threads, so a body that writes
    /// only its own range gives the same bits on any number of threads. `cost` is the work per
    /// element in multiply-add equivalents (it decides whether other threads pay, see
    /// `tsk_parallel_for`); with one thread, or one range, the calling thread runs them in order without the pool.
    static func forEachChunk(count: Int, chunk: Int = elementChunk, cost: Int = 2, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunk = max(1, chunk)
        let chunks = (count + chunk - 1) / chunk
        guard chunks > 1, Threads.count > 1 else {
            for c in 0..<chunks { body(c * chunk ..< min(count, (c + 1) * chunk)) }
            return
        }
        SparseKernels.parallelFor(threads: Threads.count, count: chunks, work: count.multipliedReportingOverflow(by: max(1, cost)).partialValue) { c in
            body(c * chunk ..< min(count, (c + 1) * chunk))
        }
    }
}
