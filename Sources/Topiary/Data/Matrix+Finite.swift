extension Matrix {
    /// The flat index of the first element that is NaN or infinite, or `nil` if all are finite.
    ///
    /// - Complexity: O(rows × columns).
    var firstNonFiniteIndex: Int? {
        storage.withUnsafeBufferPointer { buffer in
            for i in buffer.indices where !buffer[i].isFinite { return i }
            return nil
        }
    }

    /// Whether every element is finite (neither NaN nor infinite).
    var isFinite: Bool { firstNonFiniteIndex == nil }
}
