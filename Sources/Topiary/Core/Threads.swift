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
