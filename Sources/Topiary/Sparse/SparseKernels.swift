import CSparseKernels

/// The sparse kernels: `Y = f(W·X + b)` with `W` a ``CSRMatrix`` and activations feature-major.
///
/// This is the only file that calls the `CSparseKernels` C target. Activations are laid out
/// *feature-major*: `X` is `K × B` row-major (`X[k, b]` at `x[k * ldx + b]`), so a batch of
/// samples is contiguous and the kernel vectorises over it, broadcasting one weight against 8
/// (AVX2), 16 (AVX-512) or 4 (NEON) samples per instruction with up to 8 accumulators. At
/// `B = 1` the vector variants run a copy of the matrix in slices of as many rows as a vector has
/// lanes, sorted by length (sliced ELLPACK, one row per lane), built on the first batch-1 product
/// and kept with the matrix. The variants are one C source at different vector widths: a
/// portable scalar form (1 lane), AVX2/FMA, AVX-512 and, on aarch64, NEON, chosen once from the
/// CPU's features unless one is forced.
///
/// With two or more threads the calling thread and a pool of workers (up to one per CPU the
/// process may use) claim chunks of the
/// product dynamically: whole packed panels of the batch when there is at least one per thread
/// (each thread packs its own), otherwise ranges of rows of about equal non-zero count. Idle
/// workers spin for a bounded time (`setSpinLimit(nanoseconds:)`) and then block, and the
/// caller never waits for a worker that has not started: on a machine where another process
/// holds a core, a call degrades to about single-thread speed instead of collapsing. Products
/// are sized in multiply-adds, `nnz · max(batch, 8)`: under 2¹⁶ (a few µs) one goes to the pool
/// only while a worker is already awake; under 2²⁰ (some 60 µs) it wakes a sleeping worker, so a
/// stream of such products (a network's layers at batch 1) finds the worker spinning after the
/// first. Products under 2¹³ always run on the calling thread. For each kind of product under
/// 2²⁰ (its shape, batch and thread count, say a network's layer), the caller times its first runs
/// on each rung of a ladder of thread counts (1, 2, 4, … up to the call's), in turn, then runs it on
/// the fastest rung (a rung must be 3% faster than every rung below it) and re-times a neighbouring
/// rung every 32 runs: on a machine whose cores hand data to each other slowly, two threads can
/// lose to one for such products (`PoolStatistics.aloneJobs`), and on a many-core machine a few
/// threads to many. Either way every chunk computes the same bits. Because
/// a worker that the scheduler delays after claiming a chunk makes the caller wait, the time such
/// delays cost (`PoolStatistics.delays`) goes into a budget that drains at 1/16 of the time that
/// passes; when it exceeds 1 ms (another process is taking the cores: it delays a worker by a
/// whole scheduler slice, where a quiet host's hiccups take tens of microseconds), such products
/// back off to the calling thread alone for 2 ms, doubling while it repeats, up to 1 s
/// (`PoolStatistics.stalls`).
@_spi(Kernels) public enum SparseKernels {
    /// An instruction-set variant of the kernels.
    public enum Variant: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
        /// The portable reference (plain C loops).
        case scalar
        /// AVX2 with FMA, 8 lanes.
        case avx2
        /// AVX-512F, 16 lanes.
        case avx512
        /// ARM NEON (Advanced SIMD), 4 lanes: aarch64 only.
        case neon

        var code: Int32 {
            switch self {
            case .scalar: return Int32(TSK_VARIANT_SCALAR)
            case .avx2: return Int32(TSK_VARIANT_AVX2)
            case .avx512: return Int32(TSK_VARIANT_AVX512)
            case .neon: return Int32(TSK_VARIANT_NEON)
            }
        }

        /// Whether this CPU can run the variant.
        ///
        /// The corresponding C function is `tsk_variant_supported`.
        public var isSupported: Bool { SparseKernels.supported[Int(code)] }

        /// The variant's name.
        public var description: String { rawValue }
    }

    /// Whether each variant (by C code) runs on this CPU, detected once.
    static let supported: [Bool] = (0...3).map { tsk_variant_supported(Int32($0)) != 0 }

    /// The processors this process may run on (its CPU affinity, else the online processors).
    ///
    /// The corresponding C function is `tsk_cpu_count`.
    static var processorCount: Int { Int(tsk_cpu_count()) }

    /// The variants this CPU can run, slowest first.
    public static var supportedVariants: [Variant] { Variant.allCases.filter(\.isSupported) }

    /// The fastest variant this CPU supports, detected once.
    ///
    /// The environment variable `TOPIARY_KERNELS` (`scalar`, `avx2`, `avx512` or `neon`) names
    /// another one instead, when the CPU supports it (for measurements and tests of a narrower
    /// form on a wider machine); an unsupported or unknown name is ignored.
    /// The corresponding C function is `tsk_best_variant`.
    public static var bestVariant: Variant {
        switch Int(tsk_best_variant()) {
        case Int(TSK_VARIANT_AVX512): return .avx512
        case Int(TSK_VARIANT_AVX2): return .avx2
        case Int(TSK_VARIANT_NEON): return .neon
        default: return .scalar
        }
    }

    /// How long an idle pool worker, or a caller waiting for a worker, spins before blocking.
    ///
    /// The default is 50 µs: long enough that the layers of one forward pass reuse an awake
    /// worker, short enough that an idle pool costs nothing measurable. Not API
    /// (`@_spi(Kernels)`): a knob for the kernels' tests.
    /// The corresponding C function is `tsk_pool_set_spin_ns`.
    @_spi(Kernels) public static func setSpinLimit(nanoseconds: Int) {
        tsk_pool_set_spin_ns(Int64(nanoseconds))
    }

    /// Ends a running back-off to the calling thread (see `PoolStatistics.stalls`), resets its
    /// length and empties the delay budget, for tests.
    ///
    /// The corresponding C function is `tsk_pool_reset_backoff`.
    static func resetBackOff() {
        tsk_pool_reset_backoff()
    }

    /// Counters of the thread pool since the process started.
    ///
    /// Not API (`@_spi(Kernels)`): diagnostics for `topiary bench` and the kernels' tests.
    @_spi(Kernels) public struct PoolStatistics: Sendable, Equatable {
        /// Jobs handed to the pool.
        public var jobs: Int
        /// Chunks (row ranges or panels) run by pool workers.
        public var workerChunks: Int
        /// Chunks run by the calling threads.
        public var callerChunks: Int
        /// Times a thread blocked after spinning.
        public var sleeps: Int
        /// Back-offs: times the delays (``delays``) cost more than the pool's budget (see
        /// ``SparseKernels``), a sign that another process wants the cores. Each keeps products
        /// under about a million multiply-adds on the calling thread for a while (2 ms, doubling
        /// while it repeats, up to 1 s).
        public var stalls: Int
        /// Chunks run by each pool worker created so far, in the order the workers were created:
        /// a call with `threads` threads lets only the first `threads - 1` workers take part (fewer
        /// when its kind of job runs faster on a lower rung of the pool's ladder of thread counts).
        public var workerChunksByIndex: [Int]
        /// Products under about a million multiply-adds that ran on the calling thread alone
        /// because their kind ran faster that way when timed both ways (see ``SparseKernels``).
        public var aloneJobs: Int
        /// Delayed workers: times a product under about a million multiply-adds waited at least
        /// 20 µs longer for a worker's chunk than its own share took, or a spinning worker found it
        /// had been descheduled for 200 µs or more.
        public var delays: Int
    }

    /// A snapshot of the pool counters (``PoolStatistics``).
    ///
    /// The corresponding C function is `tsk_pool_get_stats`.
    @_spi(Kernels) public static var poolStatistics: PoolStatistics {
        let s = tsk_pool_get_stats()
        return PoolStatistics(jobs: Int(s.jobs), workerChunks: Int(s.worker_chunks),
                              callerChunks: Int(s.caller_chunks), sleeps: Int(s.sleeps), stalls: Int(s.stalls),
                              workerChunksByIndex: withUnsafeBytes(of: s.worker_chunks_by_index) {
                                  $0.bindMemory(to: UInt64.self).prefix(Int(s.workers)).map { Int($0) }
                              },
                              aloneJobs: Int(s.alone), delays: Int(s.delays))
    }

    /// A ``CSRMatrix`` copied into stable memory, with row splits for threading, ready for the C kernels.
    final class Operand {
        let rows: Int
        let columns: Int
        let nonzeros: Int
        private let offsets: UnsafeMutableBufferPointer<Int64>
        private let indices16: UnsafeMutableBufferPointer<UInt16>?
        private let indices32: UnsafeMutableBufferPointer<UInt32>?
        private let values: UnsafeMutableBufferPointer<Float>
        private let view: UnsafeMutablePointer<tsk_csr>
        /// Row boundaries for `chunkCount` chunks of about equal cost.
        private let splits: UnsafeMutableBufferPointer<Int64>
        let chunkCount: Int

        /// The default chunk count: 8 (measured on two cores), or 4 per CPU the process may use
        /// on a bigger machine, so that every thread can claim several chunks of a product.
        static let defaultChunkCount = max(8, 4 * SparseKernels.processorCount)

        init(_ w: CSRMatrix, chunkCount: Int = Operand.defaultChunkCount) {
            rows = w.rows
            columns = w.columns
            nonzeros = w.nonzeroCount
            offsets = .allocate(capacity: w.rows + 1)
            for i in 0...w.rows { offsets[i] = Int64(w.offsets[i]) }
            values = .allocate(capacity: max(1, w.nonzeroCount))
            _ = values.initialize(from: w.values)
            let indexBytes: Int32
            switch w.indices {
            case .narrow(let a):
                let p = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: max(1, a.count))
                _ = p.initialize(from: a)
                indices16 = p; indices32 = nil; indexBytes = 2
            case .wide(let a):
                let p = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: max(1, a.count))
                _ = p.initialize(from: a)
                indices16 = nil; indices32 = p; indexBytes = 4
            }
            view = .allocate(capacity: 1)
            let rawIndices = indices16.map { UnsafeRawPointer($0.baseAddress!) }
                ?? UnsafeRawPointer(indices32!.baseAddress!)
            view.initialize(to: tsk_csr(rows: Int64(w.rows), columns: Int64(w.columns),
                                        offsets: UnsafePointer(offsets.baseAddress!),
                                        indices: rawIndices, index_bytes: indexBytes,
                                        values: UnsafePointer(values.baseAddress!), spmv_cache: nil))
            self.chunkCount = max(1, min(chunkCount, w.rows))
            splits = .allocate(capacity: self.chunkCount + 1)
            tsk_split_rows(offsets.baseAddress!, Int64(w.rows), Int64(self.chunkCount), 2, splits.baseAddress!)
        }

        deinit {
            tsk_csr_release(view)
            offsets.deallocate()
            indices16?.deallocate()
            indices32?.deallocate()
            values.deallocate()
            view.deallocate()
            splits.deallocate()
        }

        /// `y[M × batch] = f(W · x[K × batch] + bias)`, feature-major with row strides `ldx`, `ldy`.
        ///
        /// The corresponding C function is `tsk_spmm`.
        func multiply(_ x: UnsafePointer<Float>, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                      batch: Int, bias: UnsafePointer<Float>?, activation: Activation,
                      threads: Int, variant: Variant) {
            guard batch > 0, rows > 0 else { return }
            // How eagerly a product uses the pool is decided in C (`job_size`, the back-off).
            tsk_spmm(variant.code, Int32(clamping: threads), view, x, Int64(ldx), y, Int64(ldy), Int64(batch),
                     bias, activation.kernelCode, splits.baseAddress!, Int64(chunkCount))
        }
    }

    /// `y[i, j] = f(y[i, j] + bias[i])` over a feature-major `rows × batch` buffer: the fused
    /// pass after a dense `sgemm` in a compiled network.
    ///
    /// The corresponding C function is `tsk_bias_act`.
    static func addBiasAndApply(_ y: UnsafeMutablePointer<Float>, ldy: Int, rows: Int, batch: Int,
                                bias: UnsafePointer<Float>, activation: Activation) {
        tsk_bias_act(y, Int64(ldy), Int64(rows), Int64(batch), bias, activation.kernelCode)
    }

    /// The batch columns of one packed panel of `variant` (64 for AVX2 and AVX-512, 32 for NEON,
    /// 0 for the scalar form, which does not pack).
    ///
    /// The corresponding C function is `tsk_panel_width`.
    static func panelWidth(_ variant: Variant) -> Int { Int(tsk_panel_width(variant.code)) }

    /// Runs `body(i)` for every `i < count` on up to `threads` threads (the caller and the
    /// kernels' pool, which claim indices dynamically); returns when all have run.
    ///
    /// `work` is the whole job's cost in multiply-adds, which decides how eagerly the pool takes
    /// part (see `tsk_parallel_for`). `body` runs concurrently with itself: it must only write
    /// memory no other index touches, and the sparse products it runs execute on one thread.
    /// The corresponding C function is `tsk_parallel_for`.
    static func parallelFor(threads: Int, count: Int, work: Int = .max, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { body in
            let box = ParallelBody(body)
            withExtendedLifetime(box) {
                tsk_parallel_for(Int32(clamping: threads), Int64(count), Int64(work), { ctx, i in
                    guard let ctx else { return }
                    Unmanaged<ParallelBody>.fromOpaque(ctx).takeUnretainedValue().body(Int(i))
                }, Unmanaged.passUnretained(box).toOpaque())
            }
        }
    }

    /// The closure of ``parallelFor(threads:count:work:_:)``, boxed to cross into C.
    private final class ParallelBody {
        let body: (Int) -> Void
        init(_ body: @escaping (Int) -> Void) { self.body = body }
    }

    /// `dst = srcᵀ` where `src` is `rows × columns` row-major.
    ///
    /// The corresponding C function is `tsk_transpose`.
    static func transpose(_ src: UnsafePointer<Float>, rows: Int, columns: Int, into dst: UnsafeMutablePointer<Float>) {
        tsk_transpose(src, Int64(rows), Int64(columns), dst)
    }
}

extension Activation {
    /// The C kernels' code for this activation.
    var kernelCode: Int32 {
        switch self {
        case .identity: return Int32(TSK_ACT_IDENTITY)
        case .relu: return Int32(TSK_ACT_RELU)
        case .tanh: return Int32(TSK_ACT_TANH)
        case .sigmoid: return Int32(TSK_ACT_SIGMOID)
        }
    }
}
