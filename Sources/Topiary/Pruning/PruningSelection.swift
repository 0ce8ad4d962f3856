/// Exact-k selection: the building block that makes pruning counts exact and deterministic.
///
/// Every candidate weight gets a 64-bit *order key*: the saliency mapped to an order-preserving
/// `UInt32` in the high half, and a unique position (the weight's index over all prunable layers,
/// layer after layer, row-major inside a layer) in the low half. Keys are distinct, so "the `m`
/// lowest keys" is always exactly `m` weights, and ties in saliency are broken by the lower
/// layer, then the lower flat index, being pruned first.
///
/// The `m`-th lowest key is found by a four-pass radix select over 16-bit digits (O(n), no sort).
///
/// ```swift
/// var keys: [UInt64] = saliencies.enumerated().map { PruningSelection.key(saliency: $1, position: $0) }
/// let threshold = PruningSelection.kthSmallest(&keys, k: 9)   // prune every key <= threshold: 10 weights
/// ```
enum PruningSelection {
    /// An order-preserving map from `Float` to `UInt32`: `a < b ⇔ orderKey(a) < orderKey(b)`.
    ///
    /// `-0.0` and `+0.0` map to the same key; NaN maps to `0`, below every number (NaN saliency is
    /// pruned first).
    @inlinable
    static func orderKey(_ value: Float) -> UInt32 {
        let bits = (value + 0).bitPattern   // -0 + 0 == +0
        // Branch-free: negative numbers flip every bit, non-negative ones only the sign bit.
        let flip = UInt32(bitPattern: Int32(bitPattern: bits) >> 31) | 0x8000_0000
        return value.isNaN ? 0 : bits ^ flip
    }

    /// The order key of a weight: `orderKey(saliency) << 32 | position`.
    @inlinable
    static func key(saliency: Float, position: Int) -> UInt64 {
        UInt64(orderKey(saliency)) << 32 | UInt64(UInt32(truncatingIfNeeded: position))
    }

    /// The `k`-th smallest key (from 0) of `keys`, by radix select; `keys` is reordered and shrunk
    /// in the process (its content afterwards is unspecified).
    ///
    /// - Precondition: `0 <= k < keys.count`.
    /// - Complexity: O(n): at most four passes, each over the keys that share the digits so far.
    static func kthSmallest(_ keys: inout [UInt64], k: Int) -> UInt64 {
        require(k >= 0 && k < keys.count, "PruningSelection.kthSmallest: k = \(k) outside 0..<\(keys.count)")
        var histogram = [Int32](repeating: 0, count: 1 << 16)
        return keys.withUnsafeMutableBufferPointer { p in
            histogram.withUnsafeMutableBufferPointer { h in
                var n = p.count
                var k = k
                for shift in stride(from: 48, through: 0, by: -16) where n > 1 {
                    for i in 0..<h.count { h[i] = 0 }
                    for i in 0..<n { h[Int((p[i] >> UInt64(shift)) & 0xFFFF)] += 1 }
                    var digit = 0
                    var below = 0
                    while below + Int(h[digit]) <= k { below += Int(h[digit]); digit += 1 }
                    k -= below
                    var j = 0
                    for i in 0..<n where Int((p[i] >> UInt64(shift)) & 0xFFFF) == digit {
                        p[j] = p[i]
                        j += 1
                    }
                    n = j
                }
                return p[0]
            }
        }
    }

    /// The naive reference for ``kthSmallest(_:k:)``: sorts a copy.
    ///
    /// - Complexity: O(n log n).
    static func kthSmallestBySorting(_ keys: [UInt64], k: Int) -> UInt64 {
        require(k >= 0 && k < keys.count, "PruningSelection.kthSmallestBySorting: k = \(k) outside 0..<\(keys.count)")
        return keys.sorted()[k]
    }
}
