/// A network compiled for fast inference at a given batch size: each layer runs dense
/// (`sgemm`, or `sgemv` at batch 1) or compressed (`SparseDense`), chosen by a ``Policy``.
///
/// Inside the compiled network activations stay *feature-major* (`[features, batch]`): a dense
/// layer is `Y = W · X` (one `sgemm` with no transposes) and a sparse layer runs the CSR kernels
/// directly, so only the input is transposed once on the way in and the output once on the way
/// out. A plan whose layers are all dense runs batch-major instead, exactly as ``Chain`` does, with
/// no transposes. And with two or more threads and a batch under 64, a dense layer transposes its
/// input to batch-major and its output back around the `sgemm`, because OpenBLAS splits a
/// feature-major product badly along a small batch (see `batchMajorLimit`). The weights are copied at compile time; later changes to the ``Chain`` are not seen.
///
/// With two or more threads and a batch of at least two *slabs* (`slabWidth` samples, the
/// kernels' panel width: 64 with AVX2), a plan may cut the batch into slabs, each thread carrying
/// whole slabs through every layer on its own: one synchronisation per call instead of one per
/// layer, and a full slab's activations are exactly one packed panel, so its layers copy nothing
/// (the last slab takes the remainder and is packed). ``Policy/automatic`` compares both ways on
/// whole forward passes and keeps slabs only when they are at least 5% faster; the other policies
/// cut slabs whenever some layer runs CSR. A plan without any CSR layer runs whole batches through
/// OpenBLAS's own threads.
///
/// OpenBLAS's thread count (``Threads/count``) is process-wide: compiling and each call set it and restore it afterwards,
/// so run one compiled network (or other OpenBLAS work) at a time per process, or the restores of
/// concurrent callers can interleave.
///
/// ```swift
/// let plan = try CompiledNetwork(net, batchSize: 128, policy: .automatic)
/// print(plan.report)                          // per-layer choice and timings
/// let logits = try plan.predict(images)       // same as net(images) within float rounding
/// let accuracy = try plan.evaluate(data.test).accuracy
/// ```
public final class CompiledNetwork {
    /// How each layer chooses between dense and CSR.
    public enum Policy: Sendable, Equatable, CustomStringConvertible {
        /// Time both on the layer's shape, sparsity and batch size once while compiling and keep
        /// the faster; on a near tie (CSR less than 5% faster) keep dense, so timing noise on a
        /// shared machine cannot flip a layer to the path that is slower on a quiet one. With a
        /// slab possible, layers are also timed on one slab and one thread, and the two plans are
        /// then timed on whole forward passes (compiling takes tens of milliseconds at batch 128).
        /// Layers under 50% sparsity stay dense without being timed (CSR lost every 0% cell
        /// measured). Timing on a machine where another process holds a core can mislead the
        /// choice; one-thread timings (a one-thread plan's, and the per-slab ones of a plan with
        /// more threads) alternate dense and CSR call by call, which keeps them fair under load.
        case automatic
        /// CSR when the layer's weight sparsity is at least the value, dense otherwise.
        case threshold(Double)
        /// Every layer dense (the dense-masked baseline).
        case dense
        /// Every layer CSR.
        case sparse

        /// `automatic`, `threshold(0.7)`, `dense` or `sparse`.
        public var description: String {
            switch self {
            case .automatic: return "automatic"
            case .threshold(let s): return "threshold(\(s))"
            case .dense: return "dense"
            case .sparse: return "sparse"
            }
        }
    }

    /// How one layer runs.
    @_spi(Kernels) public enum Kind: String, Sendable, Codable {
        /// `sgemm` / `sgemv` on the (masked) dense weight.
        case dense
        /// The CSR kernels on the weight's non-zeros.
        case sparse
    }

    /// The choice made for one layer, with the timings behind it when the policy measured them.
    @_spi(Kernels) public struct LayerChoice: Sendable, Codable, Equatable {
        /// The layer's position, input first.
        public var index: Int
        /// Inputs of the layer.
        public var inputSize: Int
        /// Outputs of the layer.
        public var outputSize: Int
        /// The fraction of the layer's weights that are exactly zero.
        public var sparsity: Double
        /// The path the layer runs.
        public var kind: Kind
        /// Measured seconds per dense product at the compiled batch size, or on one slab and one
        /// thread when the plan cuts slabs (``Policy/automatic`` only, and `nil` for a layer under
        /// 50% sparsity, which is not timed).
        public var denseSeconds: Double?
        /// Measured seconds per CSR product, measured as ``denseSeconds`` is.
        public var sparseSeconds: Double?
    }

    /// Dense layers of plans with two or more threads run batch-major below this batch size (see `run`).
    static let batchMajorLimit = 64

    /// ``Policy/automatic`` keeps layers below this sparsity dense without timing them. On the
    /// development machine CSR lost every measured cell at 0% (300×784 and 4096×4096, batches
    /// 1–1,024, one and two threads: 0.22–0.76×) and won by at most 1.47× at 50%, while two-thread
    /// timings taken beside a competing process picked CSR for unpruned layers (LeNet-300-100 at
    /// 0%, batch 1: 108.6 µs per sample, against 39.6 µs for the dense plan).
    static let minimumSparseSparsity = 0.5

    /// CSR must take less than this fraction of the dense time for ``Policy/automatic`` to pick it.
    static let sparseMargin = 0.95

    /// The choice of ``Policy/automatic`` for a layer of sparsity `sparsity` timed at
    /// `denseSeconds` and `sparseSeconds`: CSR only from ``minimumSparseSparsity`` and at least
    /// 5% faster (``sparseMargin``).
    static func picksSparse(sparsity: Double, denseSeconds: Double, sparseSeconds: Double) -> Bool {
        sparsity >= minimumSparseSparsity && sparseSeconds < denseSeconds * sparseMargin
    }

    enum Step {
        case dense(weight: UnsafeMutableBufferPointer<Float>, bias: UnsafeMutableBufferPointer<Float>,
                   rows: Int, columns: Int, activation: Activation)
        case sparse(SparseDense)

        var isDense: Bool {
            if case .dense = self { return true }
            return false
        }

        var inputSize: Int {
            switch self {
            case .dense(_, _, _, let columns, _): return columns
            case .sparse(let layer): return layer.inputSize
            }
        }
    }

    /// The largest batch one call processes at once; larger inputs are processed in pieces.
    public let batchSize: Int
    /// The policy the layers were chosen by.
    public let policy: Policy
    /// Threads for the CSR kernels and for OpenBLAS: the count asked for, lowered to the
    /// processors the process may run on (see ``Threads``).
    public let threads: Int
    /// The CSR kernel variant.
    @_spi(Kernels) public let variant: SparseKernels.Variant
    /// The per-layer choices, input first.
    @_spi(Kernels) public let choices: [LayerChoice]
    /// Samples per slab when batches of at least two slabs are split across threads (see the
    /// type's discussion), or `nil` when every call runs layer by layer with all threads (one
    /// thread, a batch size under two slabs, the scalar kernels, no CSR layer, or
    /// ``Policy/automatic`` found slabs not 5% faster).
    @_spi(Kernels) public let slabWidth: Int?
    /// The layer sizes, input first.
    public let sizes: [Int]

    /// The layers as they run, input first.
    let steps: [Step]
    private let buffers: Buffers

    /// The scratch memory of a plan: two feature-major activation buffers of
    /// `maxWidth × batchSize` floats, used in turn, and, with two or more threads and batches over
    /// one sample, `2 · maxWidth × min(batchSize, batchMajorLimit)` floats where a dense layer's
    /// input and output are laid out batch-major (see `run`). 64-byte aligned, so that a slab's activations can serve
    /// as a packed panel.
    private struct Buffers {
        let x: UnsafeMutablePointer<Float>
        let y: UnsafeMutablePointer<Float>
        let batchMajor: UnsafeMutablePointer<Float>?

        init(width: Int, batchSize: Int, threads: Int) {
            func make(_ n: Int) -> UnsafeMutablePointer<Float> {
                let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, n) * MemoryLayout<Float>.stride, alignment: 64)
                let p = raw.bindMemory(to: Float.self, capacity: max(1, n))
                p.initialize(repeating: 0, count: max(1, n))
                return p
            }
            x = make(width * batchSize)
            y = make(width * batchSize)
            batchMajor = threads > 1 && batchSize > 1 ? make(2 * width * min(batchSize, CompiledNetwork.batchMajorLimit)) : nil
        }

        func deallocate() {
            UnsafeMutableRawPointer(x).deallocate()
            UnsafeMutableRawPointer(y).deallocate()
            batchMajor.map { UnsafeMutableRawPointer($0).deallocate() }
        }
    }

    /// The number of inputs.
    public var inputSize: Int { sizes[0] }
    /// The number of outputs.
    public var outputSize: Int { sizes[sizes.count - 1] }

    /// Compiles `network` for batches of up to `batchSize` samples.
    ///
    /// - Parameters:
    ///   - network: the network to compile; its weights are copied, so later changes to it are not seen.
    ///   - batchSize: the largest batch one call processes at once (``predict(_:)`` and
    ///     ``evaluate(_:loss:)`` cut larger inputs into pieces of this size); ``Policy/automatic``
    ///     times the layers at this batch size.
    ///   - policy: how each layer chooses dense or CSR (``Policy/automatic`` times both).
    ///   - threads: threads for the CSR kernels and for OpenBLAS; `nil` takes ``Threads/count``
    ///     (the default of training and ``Chain`` too). OpenBLAS's process-wide thread count is
    ///     set to this value (or to 1 while slabs run on their own threads) during compilation
    ///     and each call, and restored after. A count above the processors the process may run
    ///     on is lowered to that number (``threads`` tells the count used).
    /// - Throws: ``TopiaryError/Kind/invalidOption`` for a batch size or thread count outside
    ///   `1...1_000_000` and `1...1024`.
    public convenience init(_ network: Chain, batchSize: Int, policy: Policy = .automatic, threads: Int? = nil) throws {
        try self.init(network, batchSize: batchSize, policy: policy, threads: threads, variant: nil)
    }

    /// ``init(_:batchSize:policy:threads:)`` with a chosen CSR kernel variant (`nil` picks
    /// `SparseKernels.bestVariant`), for the kernels' tests and benchmarks.
    ///
    /// - Throws: as ``init(_:batchSize:policy:threads:)``, and ``TopiaryError/Kind/invalidOption``
    ///   when this CPU cannot run `variant`.
    @_spi(Kernels) public convenience init(_ network: Chain, batchSize: Int, policy: Policy = .automatic, threads: Int? = nil,
                                           variant: SparseKernels.Variant?) throws {
        try self.init(sources: network.layers.map { .dense($0) }, batchSize: batchSize, policy: policy, threads: threads,
                      variant: variant)
    }

    /// Compiles the model saved at `path` for batches of up to `batchSize` samples (inputs
    /// normalised as the file's ``Model/normalization`` says). A layer the file stores compressed
    /// that runs CSR is built from the file's arrays without ever being expanded to `[out, in]`;
    /// it is expanded only where it runs dense, or with ``Policy/automatic``, which times both
    /// forms.
    ///
    /// - Throws: as ``Model/load(from:)`` and ``init(_:batchSize:policy:threads:)``.
    @_spi(Files) public convenience init(contentsOf path: String, batchSize: Int, policy: Policy = .automatic,
                                         threads: Int? = nil) throws {
        let contents = try Model.Contents(try SafeTensors.read(from: path), source: path)
        try self.init(sources: contents.layers.map { layer in
            if case .compressed(let csr) = layer.weight { return .compressed(csr, bias: layer.bias, activation: layer.activation) }
            return .dense(layer.dense())
        }, batchSize: batchSize, policy: policy, threads: threads, variant: nil)
    }

    /// A layer to compile: a ``Dense`` layer, or a weight already in CSR form (from a file).
    enum LayerSource {
        case dense(Dense)
        case compressed(CSRMatrix, bias: [Float], activation: Activation)

        var inputSize: Int {
            switch self {
            case .dense(let layer): return layer.inputSize
            case .compressed(let w, _, _): return w.columns
            }
        }

        var outputSize: Int {
            switch self {
            case .dense(let layer): return layer.outputSize
            case .compressed(let w, _, _): return w.rows
            }
        }

        /// The fraction of the weights that are exactly zero.
        var sparsity: Double {
            switch self {
            case .dense(let layer): return CompiledNetwork.sparsity(layer)
            case .compressed(let w, _, _):
                let count = w.rows * w.columns
                return count == 0 ? 0 : 1 - Double(w.values.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }) / Double(count)
            }
        }

        /// The layer for the CSR kernels (a compressed weight as it is, explicit zeros included).
        func sparseLayer() -> SparseDense {
            switch self {
            case .dense(let layer): return SparseDense(layer)
            case .compressed(let w, let bias, let activation): return SparseDense(weight: w, bias: bias, activation: activation)
            }
        }

        /// The dense step (a compressed weight is expanded into the step's own buffer).
        func denseStep() -> Step {
            switch self {
            case .dense(let layer): return CompiledNetwork.denseStep(layer)
            case .compressed(let csr, let bias, let activation):
                let (m, k) = (csr.rows, csr.columns)
                let w = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, m * k))
                w.initialize(repeating: 0)
                for i in 0..<m {
                    for p in csr.offsets[i]..<csr.offsets[i + 1] { w[i * k + csr.indices[p]] = csr.values[p] }
                }
                let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, bias.count))
                _ = b.initialize(from: bias)
                return .dense(weight: w, bias: b, rows: m, columns: k, activation: activation)
            }
        }
    }

    /// The designated initialiser: compiles `sources`, which chain.
    init(sources: [LayerSource], batchSize: Int, policy: Policy, threads requested: Int?, variant: SparseKernels.Variant?) throws {
        let sizes = [sources[0].inputSize] + sources.map(\.outputSize)
        let requested = requested ?? min(Threads.count, 1024)
        guard (1...1_000_000).contains(batchSize) else {
            throw TopiaryError(.invalidOption, "CompiledNetwork: the batch size must be between 1 and 1,000,000, got \(batchSize)")
        }
        guard (1...1024).contains(requested) else {
            throw TopiaryError(.invalidOption, "CompiledNetwork: the thread count must be between 1 and 1024, got \(requested)")
        }
        let threads = Threads.usable(requested)
        let v = variant ?? SparseKernels.bestVariant
        guard v.isSupported else {
            throw TopiaryError(.invalidOption, "CompiledNetwork: this CPU cannot run the \(v) kernels")
        }
        self.batchSize = batchSize
        self.policy = policy
        self.threads = threads
        self.variant = v
        self.sizes = sizes
        let scratch = Buffers(width: sizes.max() ?? 1, batchSize: batchSize, threads: threads)
        buffers = scratch
        let panel = SparseKernels.panelWidth(v)
        var slab = threads > 1 && panel > 0 && batchSize >= 2 * panel ? panel : nil

        let savedThreads = BLAS.threadCount
        defer { BLAS.threadCount = savedThreads }
        var steps: [Step] = []
        var choices: [LayerChoice] = []
        if policy == .automatic {
            // Time every layer both ways as it would run layer by layer (the whole batch on all
            // threads) and, when slabs are possible, as it would run in a slab (one slab, one
            // thread); keep the faster path per layer in each mode, then the mode whose whole
            // forward pass is faster (slabs must win by 5%).
            let dense = sources.map { $0.denseStep() }
            // Layers under `minimumSparseSparsity` are neither converted nor timed.
            let sparse: [SparseDense?] = sources.map {
                $0.sparsity >= CompiledNetwork.minimumSparseSparsity ? $0.sparseLayer() : nil
            }
            // (dense, CSR) seconds per layer, nil for a layer that stays dense. With one thread
            // the two are timed call by call in turn, so that a competing process slows both
            // alike; with more, CSR first for every layer, then dense: OpenBLAS's idle threads
            // spin for about 0.13 s after a threaded product and would share a core with a CSR
            // timing that followed one.
            func times(batch: Int, threads t: Int) -> [(Double, Double)?] {
                BLAS.threadCount = t
                let pairs = sparse.enumerated().compactMap { i, layer in layer.map { (i, Step.sparse($0)) } }
                var out = [(Double, Double)?](repeating: nil, count: sparse.count)
                if t == 1 {
                    for (i, csr) in pairs {
                        out[i] = CompiledNetwork.timeInterleaved(dense[i], csr, batch: batch, buffers: scratch, variant: v)
                    }
                    return out
                }
                let time = { (step: Step) in
                    CompiledNetwork.timeStep(step, batch: batch, buffers: scratch, threads: t, variant: v)
                }
                let csr = pairs.map { time($0.1) }
                for ((i, _), c) in zip(pairs, csr) { out[i] = (time(dense[i]), c) }
                return out
            }
            let slabbed = slab.map { times(batch: $0, threads: 1) } ?? []
            let whole = times(batch: batchSize, threads: threads)
            func faster(_ i: Int, _ times: [(Double, Double)?]) -> Bool {
                guard let t = times[i] else { return false }
                return CompiledNetwork.picksSparse(sparsity: sources[i].sparsity,
                                                   denseSeconds: t.0, sparseSeconds: t.1)
            }
            func plan(_ times: [(Double, Double)?]) -> [Step] {
                times.indices.map { i in
                    if faster(i, times), let layer = sparse[i] { return .sparse(layer) }
                    return dense[i]
                }
            }
            // The slabbed plan must prove itself on whole forward passes: its layers' times
            // assume slabs run side by side at full speed, which is not always so.
            if let s = slab, slabbed.indices.contains(where: { faster($0, slabbed) }) {
                let (a, b) = CompiledNetwork.timePlans(plan(whole), plan(slabbed), slab: s, sizes: sizes,
                                                       batch: batchSize, threads: threads, variant: v, buffers: scratch)
                if b >= a * CompiledNetwork.sparseMargin { slab = nil }
            } else {
                slab = nil
            }
            let times = slab == nil ? whole : slabbed
            for (index, layer) in sources.enumerated() {
                var choice = LayerChoice(index: index, inputSize: layer.inputSize, outputSize: layer.outputSize,
                                         sparsity: layer.sparsity, kind: faster(index, times) ? .sparse : .dense)
                if let t = times[index] { (choice.denseSeconds, choice.sparseSeconds) = t }
                if choice.kind == .sparse, let layer = sparse[index] {
                    CompiledNetwork.release(dense[index])
                    steps.append(.sparse(layer))
                } else {
                    steps.append(dense[index])
                }
                choices.append(choice)
            }
        } else {
            for (index, layer) in sources.enumerated() {
                let sparsity = layer.sparsity
                let kind: Kind
                switch policy {
                case .sparse: kind = .sparse
                case .threshold(let s): kind = sparsity >= s ? .sparse : .dense
                default: kind = .dense
                }
                // Only the form the layer runs is built.
                steps.append(kind == .sparse ? .sparse(layer.sparseLayer()) : layer.denseStep())
                choices.append(LayerChoice(index: index, inputSize: layer.inputSize, outputSize: layer.outputSize,
                                           sparsity: sparsity, kind: kind))
            }
        }
        self.steps = steps
        self.choices = choices
        // An all-dense plan leaves the threading to OpenBLAS, on the whole batch.
        slabWidth = choices.contains { $0.kind == .sparse } ? slab : nil
    }

    /// The fraction of a layer's weights that are exactly zero.
    static func sparsity(_ layer: Dense) -> Double {
        layer.weight.count == 0 ? 0 : 1 - Double(layer.weight.nonzeroCount) / Double(layer.weight.count)
    }

    deinit {
        buffers.deallocate()
        for step in steps { CompiledNetwork.release(step) }
    }

    static func denseStep(_ layer: Dense) -> Step {
        let w = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, layer.weight.count))
        _ = w.initialize(from: layer.weight.storage)
        let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, layer.bias.count))
        _ = b.initialize(from: layer.bias)
        return .dense(weight: w, bias: b, rows: layer.outputSize, columns: layer.inputSize, activation: layer.activation)
    }

    private static func release(_ step: Step) {
        if case .dense(let w, let b, _, _, _) = step {
            w.deallocate()
            b.deallocate()
        }
    }

    /// Runs one step on feature-major buffers with row stride `batch`. With two or more threads, a
    /// batch under ``batchMajorLimit`` and `batchMajor` scratch (`(inputs + outputs) × batch`
    /// floats), a dense layer transposes its input to batch-major, runs `Xᵀ·Wᵀ` and transposes
    /// the result back: OpenBLAS splits the feature-major `W·X` between its threads along the
    /// batch, which pays badly for small batches (two threads, batch 16: 4096×4096 18.6–36 ms
    /// against 13.1–15.5 ms batch-major, one thread 26 ms; 1024×1024 1.03 against 0.67 ms;
    /// 300×784 0.160 against 0.148 ms). From a panel of samples on, the two forms are within a
    /// few percent (300×784 at batch 128: 0.94–1.03 against 0.88 ms) and the transposes eat the
    /// difference (compiled LeNet-300-100, all dense, batch 128, two threads: 85,651–95,976
    /// samples/s either way), so larger batches stay feature-major.
    private static func run(_ step: Step, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                            batch: Int, threads: Int, variant: SparseKernels.Variant,
                            batchMajor: UnsafeMutablePointer<Float>? = nil) {
        switch step {
        case .dense(let w, let b, let m, let k, let activation):
            if batch == 1 {
                BLAS.gemv(.none, rows: m, columns: k, a: w.baseAddress!, lda: k, x: x, y: y)
            } else if threads > 1, batch < batchMajorLimit, let xt = batchMajor {
                let yt = xt + k * batch
                SparseKernels.transpose(x, rows: k, columns: batch, into: xt)
                BLAS.gemm(.none, .transpose, m: batch, n: m, k: k, a: xt, lda: k, b: w.baseAddress!, ldb: k,
                          c: yt, ldc: m)
                SparseKernels.transpose(yt, rows: batch, columns: m, into: y)
            } else {
                BLAS.gemm(.none, .none, m: m, n: batch, k: k, a: w.baseAddress!, lda: k,
                          b: x, ldb: batch, c: y, ldc: batch)
            }
            SparseKernels.addBiasAndApply(y, ldy: batch, rows: m, batch: batch,
                                          bias: b.baseAddress!, activation: activation)
        case .sparse(let layer):
            layer.forward(featureMajor: x, batch: batch, into: y, threads: threads, variant: variant)
        }
    }

    /// Fills the first `count` floats of `buffers.x` with the same seeded random values every time.
    private static func randomInput(_ buffers: Buffers, count: Int) -> UnsafePointer<Float> {
        var rng = SeededRandom(seed: 0x5EED)
        for i in 0..<count { buffers.x[i] = rng.nextUniform(-1, 1) }
        return UnsafePointer(buffers.x)
    }

    /// Times one step on random feature-major input: the minimum over three rounds of the median
    /// of at least five runs (more while under 2 ms in all, up to 31), after a warm-up.
    private static func timeStep(_ step: Step, batch: Int, buffers: Buffers, threads: Int,
                                 variant: SparseKernels.Variant) -> Double {
        let x = randomInput(buffers, count: step.inputSize * batch), y = buffers.y
        var best = Double.infinity
        for _ in 0..<3 {
            run(step, x, y, batch: batch, threads: threads, variant: variant, batchMajor: buffers.batchMajor)
            var times: [Double] = []
            var total = 0.0
            while times.count < 5 || (total < 2e-3 && times.count < 31) {
                let t = Timing.seconds { run(step, x, y, batch: batch, threads: threads, variant: variant, batchMajor: buffers.batchMajor) }
                times.append(t)
                total += t
            }
            best = min(best, Timing.median(times))
        }
        return best
    }

    /// Times two steps on one thread, alternating call by call after a warm-up of each: the
    /// minimum over three rounds of the median of each, at least five calls each per round (more
    /// while the round is under 4 ms, up to 31). Returns (seconds of `a`, seconds of `b`).
    private static func timeInterleaved(_ a: Step, _ b: Step, batch: Int, buffers: Buffers,
                                        variant: SparseKernels.Variant) -> (Double, Double) {
        let x = randomInput(buffers, count: a.inputSize * batch), y = buffers.y
        func once(_ step: Step) -> Double {
            Timing.seconds { run(step, x, y, batch: batch, threads: 1, variant: variant) }
        }
        var best = (Double.infinity, Double.infinity)
        for _ in 0..<3 {
            _ = once(a)
            _ = once(b)
            var (ta, tb): ([Double], [Double]) = ([], [])
            var total = 0.0
            while ta.count < 5 || (total < 4e-3 && ta.count < 31) {
                ta.append(once(a))
                tb.append(once(b))
                total += ta[ta.count - 1] + tb[tb.count - 1]
            }
            best = (min(best.0, Timing.median(ta)), min(best.1, Timing.median(tb)))
        }
        return best
    }

    /// Forward pass: `output[batch, out] = network(input[batch, in])`, both row-major. The output
    /// may overlap the input (the input is then copied first).
    ///
    /// - Precondition: `1 ≤ batch ≤ batchSize`.
    @_spi(Kernels) public func forward(_ input: UnsafePointer<Float>, batch: Int, into output: UnsafeMutablePointer<Float>) {
        require(batch >= 1 && batch <= batchSize,
                     "CompiledNetwork.forward: batch \(batch) is outside 1...\(batchSize) (the compiled batch size)")
        let savedThreads = BLAS.threadCount
        defer { if BLAS.threadCount != savedThreads { BLAS.threadCount = savedThreads } }
        let (inputCount, outputCount) = (batch * sizes[0], batch * sizes[sizes.count - 1])
        if UnsafePointer(output) < input + inputCount, input < UnsafePointer(output) + outputCount {
            // In place (the output overlaps the input): the layers read the input as they write.
            let copy = Array(UnsafeBufferPointer(start: input, count: inputCount))
            copy.withUnsafeBufferPointer { forward($0.baseAddress!, batch: batch, into: output) }
            return
        }
        CompiledNetwork.forward(steps, slab: slabWidth, sizes: sizes, input, batch: batch, into: output,
                                threads: threads, variant: variant, buffers: buffers)
    }

    /// The forward pass of a plan: `steps` on `batch` samples, slabbed when `slab` is set and the
    /// batch holds two slabs, with scratch `buffers` for `batch` samples or more.
    private static func forward(_ steps: [Step], slab: Int?, sizes: [Int], _ input: UnsafePointer<Float>, batch: Int,
                                into output: UnsafeMutablePointer<Float>, threads: Int, variant: SparseKernels.Variant,
                                buffers: Buffers) {
        let (inputSize, outputSize, width) = (sizes[0], sizes[sizes.count - 1], sizes.max() ?? 1)
        // Runs every layer on `n` samples with the scratch buffers `x` and `y` (and `batchMajor`).
        func run(_ input: UnsafePointer<Float>, _ n: Int, _ output: UnsafeMutablePointer<Float>,
                 _ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, threads: Int,
                 batchMajor: UnsafeMutablePointer<Float>? = nil) {
            if n == 1 {
                // One sample is its own feature-major column: the first layer reads the input and
                // the last writes the output in place, with no copies (a copy would also make the
                // pool's worker fetch the input's lines from the caller's core on every call).
                var (source, target, spare) = (input, x, y)
                for (index, step) in steps.enumerated() {
                    let into = index == steps.count - 1 ? output : target
                    CompiledNetwork.run(step, source, into, batch: 1, threads: threads, variant: variant, batchMajor: batchMajor)
                    (source, target, spare) = (UnsafePointer(into), spare, target)
                }
                return
            }
            var x = x, y = y
            SparseKernels.transpose(input, rows: n, columns: inputSize, into: x)
            for step in steps {
                CompiledNetwork.run(step, x, y, batch: n, threads: threads, variant: variant, batchMajor: batchMajor)
                swap(&x, &y)
            }
            SparseKernels.transpose(x, rows: outputSize, columns: n, into: output)
        }
        let (x, y) = (buffers.x, buffers.y)
        if let slab, batch >= 2 * slab {
            // Each thread carries whole slabs through the network, calling OpenBLAS single-threaded.
            if BLAS.threadCount != 1 { BLAS.threadCount = 1 }
            let count = batch / slab
            // The last slab takes the remainder (slab ..< 2·slab samples), so no slab is a lone
            // sample (the SpMV path sums in another order) and the bits match one thread's.
            SparseKernels.parallelFor(threads: threads, count: count) { s in
                let start = s * slab, n = s == count - 1 ? batch - start : slab
                run(input + start * inputSize, n, output + start * outputSize,
                    x + s * width * slab, y + s * width * slab, threads: 1)
            }
            return
        }
        if BLAS.threadCount != threads { BLAS.threadCount = threads }
        if steps.allSatisfy(\.isDense) {
            // An all-dense plan runs batch-major like ``Chain`` (`X·Wᵀ` per layer, `sgemv` for one
            // sample, no transposes): OpenBLAS's threads split that form well, and it gives the
            // Chain's own bits.
            var source = input
            for (index, step) in steps.enumerated() {
                guard case .dense(let w, let b, let m, let k, let activation) = step else { continue }
                let target = index == steps.count - 1 ? output : (index % 2 == 0 ? x : y)
                if batch == 1 {
                    BLAS.gemv(.none, rows: m, columns: k, a: w.baseAddress!, lda: k, x: source, y: target)
                } else {
                    BLAS.gemm(.none, .transpose, m: batch, n: m, k: k, a: source, lda: k, b: w.baseAddress!, ldb: k,
                              c: target, ldc: m)
                }
                activation.addBiasAndApply(target, bias: b.baseAddress!, batch: batch, width: m)
                source = UnsafePointer(target)
            }
            return
        }
        run(input, batch, output, x, y, threads: threads, batchMajor: buffers.batchMajor)
    }

    /// Times two plans' whole forward passes on random input, layer by layer (`a`) and in slabs
    /// (`b`): the minimum over three rounds of the median of five passes, `b`'s rounds first.
    private static func timePlans(_ a: [Step], _ b: [Step], slab: Int, sizes: [Int], batch: Int, threads: Int,
                                  variant: SparseKernels.Variant,
                                  buffers: Buffers) -> (Double, Double) {
        var rng = SeededRandom(seed: 0x5EED)
        let input = (0..<(batch * sizes[0])).map { _ in rng.nextUniform(-1, 1) }
        var output = [Float](repeating: 0, count: batch * sizes[sizes.count - 1])
        var ta: [Double] = [], tb: [Double] = []
        input.withUnsafeBufferPointer { px in
            output.withUnsafeMutableBufferPointer { py in
                func median(_ steps: [Step], _ slab: Int?) -> Double {
                    var times: [Double] = []
                    for k in 0..<6 {
                        let t = Timing.seconds {
                            forward(steps, slab: slab, sizes: sizes, px.baseAddress!, batch: batch, into: py.baseAddress!,
                                    threads: threads, variant: variant, buffers: buffers)
                        }
                        if k > 0 { times.append(t) }
                    }
                    return Timing.median(times)
                }
                // Slabs first (they call OpenBLAS single-threaded), so that OpenBLAS's threads,
                // spinning after plan `a`'s threaded products, do not share a core with them.
                for _ in 0..<3 { tb.append(median(b, slab)) }
                for _ in 0..<3 { ta.append(median(a, nil)) }
            }
        }
        return (ta.min() ?? 0, tb.min() ?? 0)
    }

    /// Applies the network to `[n, in]`, returning `[n, out]`; any `n`, processed in pieces of ``batchSize``.
    ///
    /// A batch of the wrong width stops the program with a message naming both widths, in
    /// release builds too; ``predict(_:)`` throws instead.
    public func callAsFunction(_ x: Matrix) -> Matrix {
        do { return try predict(x) } catch { fatalError("\(error)") }
    }

    /// Applies the network to `[n, in]`, returning `[n, out]` (the logits for a classifier); any
    /// `n`, processed in pieces of ``batchSize``. The same outputs as ``Chain/predict(_:)``
    /// within float rounding.
    ///
    /// - Throws: ``TopiaryError/Kind/invalidShape`` when `x` does not have ``inputSize`` columns.
    public func predict(_ x: Matrix) throws -> Matrix {
        guard x.columns == inputSize else {
            throw TopiaryError(.invalidShape, "CompiledNetwork(\(sizes.map(String.init).joined(separator: "-"))): expected input with \(inputSize) columns, got \(x.rows)×\(x.columns)")
        }
        var y = Matrix(rows: x.rows, columns: outputSize)
        x.storage.withUnsafeBufferPointer { px in
            y.storage.withUnsafeMutableBufferPointer { py in
                guard let px = px.baseAddress, let py = py.baseAddress else { return }
                var start = 0
                while start < x.rows {
                    let n = min(batchSize, x.rows - start)
                    forward(px + start * inputSize, batch: n, into: py + start * outputSize)
                    start += n
                }
            }
        }
        return y
    }

    /// Loss and accuracy on `data`, computed through the compiled plan (``Chain/evaluate(_:loss:batchSize:)``
    /// gives the same figures within float rounding).
    ///
    /// - Throws: ``TopiaryError/Kind/invalidShape`` when the data's feature count differs from
    ///   ``inputSize``, or its labels do not fit ``outputSize`` classes.
    public func evaluate(_ data: LabeledData, loss: Loss = .softmaxCrossEntropy) throws -> Evaluation {
        guard data.featureCount == inputSize else {
            throw TopiaryError(.invalidShape, "CompiledNetwork(\(sizes.map(String.init).joined(separator: "-"))): the data has \(data.featureCount) features, the network expects \(inputSize)")
        }
        if let bad = data.labels.first(where: { $0 < 0 || Int($0) >= outputSize }) {
            throw TopiaryError(.invalidShape, "CompiledNetwork: label \(bad) is outside the network's \(outputSize) classes")
        }
        guard data.count > 0 else { return Evaluation(loss: 0, accuracy: 0, count: 0) }
        var out = [Float](repeating: 0, count: batchSize * outputSize)
        var totalLoss = 0.0, correct = 0
        data.images.storage.withUnsafeBufferPointer { images in
            data.labels.withUnsafeBufferPointer { labels in
                out.withUnsafeMutableBufferPointer { y in
                    guard let images = images.baseAddress, let labels = labels.baseAddress, let y = y.baseAddress else { return }
                    var start = 0
                    while start < data.count {
                        let n = min(batchSize, data.count - start)
                        forward(images + start * inputSize, batch: n, into: y)
                        let r = loss.evaluate(output: y, labels: labels + start, batch: n, classes: outputSize, gradient: nil)
                        totalLoss += r.loss * Double(n)
                        correct += r.correct
                        start += n
                    }
                }
            }
        }
        return Evaluation(loss: totalLoss / Double(data.count), accuracy: Double(correct) / Double(data.count), count: data.count)
    }

    /// A table of the per-layer choices and, for ``Policy/automatic``, the timings.
    public var report: String {
        var lines = ["layer  shape        sparsity  path    dense_ms  csr_ms"]
        for c in choices {
            let shape = "\(c.outputSize)x\(c.inputSize)"
            let d = c.denseSeconds.map { InferenceSupport.fixed($0 * 1e3, 4) } ?? "-"
            let s = c.sparseSeconds.map { InferenceSupport.fixed($0 * 1e3, 4) } ?? "-"
            lines.append("\(InferenceSupport.pad("\(c.index)", 7))\(InferenceSupport.pad(shape, 13))\(InferenceSupport.pad(InferenceSupport.fixed(c.sparsity, 4), 10))\(InferenceSupport.pad(c.kind.rawValue, 8))\(InferenceSupport.pad(d, 10))\(s)")
        }
        if let slabWidth {
            lines.append("batches of \(2 * slabWidth)+ samples: slabs of \(slabWidth) across \(threads) threads"
                         + (policy == .automatic ? ", each layer timed on one slab and one thread" : ""))
        }
        return lines.joined(separator: "\n")
    }
}

