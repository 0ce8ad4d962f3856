/// The number of threads Topiary uses unless told otherwise: one default for training
/// (``Trainer``), ``Chain`` and ``CompiledNetwork``.
///
/// Dense products run on OpenBLAS, whose thread count is process-wide; ``count`` reads and sets
/// it. It starts at OpenBLAS's own default: the `OPENBLAS_NUM_THREADS` environment variable when
/// set, else the processors the process may use. A ``CompiledNetwork`` compiled without an
/// explicit `threads:` takes ``count`` at compile time for its sparse kernels too.
///
/// A count above the processors the process may run on (the logical CPUs of its affinity mask,
/// `sched_getaffinity`) is lowered to that number by ``count``, ``CompiledNetwork`` and the
/// sparse layers' `callAsFunction(_:threads:)`: threads beyond the processors only queue behind
/// one another and wait at every barrier. On a 2-core machine, 16 threads ran a dense
/// LeNet-300-100 at a fifth of its two-thread speed at batch 1 and a 95%-sparse 4096² product at
/// batch 1 nearly five times slower. A CPU quota (a container's `--cpus`) is not an affinity
/// mask and is not seen.
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
        set { BLAS.threadCount = newValue }
    }

    /// The processors this process may run on: the logical CPUs of its affinity mask
    /// (`sched_getaffinity`), else the online processors; read once, at first use, so a later
    /// change of the mask is not seen.
    @_spi(Kernels) public static var processors: Int { SparseKernels.processorCount }

    /// `count` within `1...processors`: the number of threads Topiary runs when asked for `count`.
    @_spi(Kernels) public static func usable(_ count: Int) -> Int { min(max(1, count), processors) }
}
