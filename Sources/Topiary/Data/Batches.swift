/// Mini-batches of labelled data in a seeded, shuffled order, copied into buffers allocated
/// once: iterating allocates nothing per batch.
///
/// `Batches` holds a permutation of the example indices and a `[batchSize, features]` image
/// buffer with a label buffer. ``withBatch(_:_:)`` copies the rows of batch `i` (one `memcpy`
/// per row) into the buffers and hands them to a closure. The last batch is partial when
/// `batchSize` does not divide the count, unless `dropLast` is set.
///
/// `Batches` shares the data's storage (copy-on-write), so it costs only the permutation and
/// the buffers; mutating the original data afterwards would copy it.
///
/// ```swift
/// var batches = Batches(data.train, batchSize: 128)
/// var rng = SeededRandom(seed: 0)
/// for epoch in 0..<15 {
///     batches.shuffle(using: &rng)
///     for b in 0..<batches.batchCount {
///         batches.withBatch(b) { images, labels, size in
///             // images: [size, 784] row-major, labels: [size]
///         }
///     }
/// }
/// ```
struct Batches {
    /// The data batched.
    let data: LabeledData
    /// The number of examples in a full batch.
    let batchSize: Int
    /// Whether a last, partial batch is left out.
    let dropLast: Bool
    /// The order in which examples are visited: a permutation of `0..<data.count`.
    private(set) var order: [Int32]
    private var imageBuffer: [Float]
    private var labelBuffer: [Int32]

    /// Prepares batches of `batchSize` examples in the natural order.
    ///
    /// - Precondition: `batchSize > 0` and `data.count` fits in `Int32`.
    init(_ data: LabeledData, batchSize: Int, dropLast: Bool = false) {
        require(batchSize > 0, "Batches: batch size must be positive, got \(batchSize)")
        require(data.count <= Int(Int32.max), "Batches: \(data.count) examples do not fit Int32 indices")
        self.data = data
        self.batchSize = batchSize
        self.dropLast = dropLast
        self.order = (0..<Int32(data.count)).map { $0 }
        let capacity = min(batchSize, max(1, data.count))
        self.imageBuffer = [Float](repeating: 0, count: capacity * max(1, data.featureCount))
        self.labelBuffer = [Int32](repeating: 0, count: capacity)
    }

    /// The number of batches: `⌈count / batchSize⌉`, or `⌊count / batchSize⌋` with `dropLast`.
    var batchCount: Int {
        dropLast ? data.count / batchSize : (data.count + batchSize - 1) / batchSize
    }

    /// The number of examples in batch `index`: `batchSize`, or fewer for the last one.
    func size(ofBatch index: Int) -> Int {
        require(index >= 0 && index < batchCount, "Batches: batch \(index) is outside 0..<\(batchCount)")
        return min(batchSize, data.count - index * batchSize)
    }

    /// The number of examples visited per pass: `count`, or whole batches only with `dropLast`.
    var exampleCount: Int { dropLast ? batchCount * batchSize : data.count }

    /// Shuffles the current order with `rng` (Fisher–Yates): successive calls with one generator
    /// give a reproducible sequence of epochs.
    mutating func shuffle(using rng: inout SeededRandom) {
        order.withUnsafeMutableBufferPointer { rng.shuffle($0) }
    }

    /// Sets the order to a shuffle that depends only on `seed` and `epoch`, not on earlier calls,
    /// so that a run resumed at `epoch` visits the examples as the uninterrupted run did.
    mutating func shuffle(seed: UInt64, epoch: Int) {
        resetOrder()
        var rng = SeededRandom(seed: seed ^ (UInt64(truncatingIfNeeded: epoch) &* 0x9E37_79B9_7F4A_7C15))
        shuffle(using: &rng)
    }

    /// Restores the natural order `0, 1, …, count − 1`.
    mutating func resetOrder() {
        order.withUnsafeMutableBufferPointer { o in
            for i in o.indices { o[i] = Int32(i) }
        }
    }

    /// Copies batch `index` into the buffers and calls `body` with the images
    /// (`[size, featureCount]` row-major), the labels (`[size]`) and `size`.
    ///
    /// The pointers are valid only inside `body`. Nothing is allocated.
    /// - Precondition: `0 <= index < batchCount`.
    /// - Complexity: O(size × featureCount).
    mutating func withBatch<R>(
        _ index: Int, _ body: (UnsafePointer<Float>, UnsafePointer<Int32>, Int) throws -> R
    ) rethrows -> R {
        let size = self.size(ofBatch: index)
        let features = data.featureCount
        let start = index * batchSize
        let images = data.images.storage
        let labels = data.labels
        let order = self.order
        return try imageBuffer.withUnsafeMutableBufferPointer { ib in
            try labelBuffer.withUnsafeMutableBufferPointer { lb in
                images.withUnsafeBufferPointer { source in
                    labels.withUnsafeBufferPointer { sourceLabels in
                        order.withUnsafeBufferPointer { o in
                            guard let src = source.baseAddress, let dst = ib.baseAddress else { return }
                            for r in 0..<size {
                                let e = Int(o[start + r])
                                (dst + r * features).update(from: src + e * features, count: features)
                                lb[r] = sourceLabels[e]
                            }
                        }
                    }
                }
                // `ib`, `lb` are never empty: they hold at least one row.
                return try body(UnsafePointer(ib.baseAddress!), UnsafePointer(lb.baseAddress!), size)
            }
        }
    }
}
