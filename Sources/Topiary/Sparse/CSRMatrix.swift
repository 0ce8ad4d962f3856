/// A sparse matrix in compressed sparse row (CSR) form, built exactly from a layer's weight.
///
/// Row `i` holds the entries `offsets[i] ..< offsets[i + 1]` of ``values`` and of the column
/// indices. Column indices are stored as `UInt16` when the matrix has at most 65,536 columns and
/// as `UInt32` otherwise, so a non-zero costs 6 bytes (4 + 2) in the common case: at batch size 1
/// the product is memory-bound and these bytes are its cost.
///
/// Invariants (checked by ``validate()`` and by the throwing initialiser): `offsets` has
/// `rows + 1` entries, starts at 0, never decreases and ends at the number of non-zeros; column
/// indices are `< columns` and strictly increasing within a row.
///
/// ```swift
/// let layer = try Dense(784 => 300, seed: 0)
/// layer.prune { i in abs(layer.weight.storage[i]) < 0.03 }
/// let w = CSRMatrix(layer)                // the non-zeros of layer.weight
/// assert(w.dense == layer.weight)         // exact round trip
/// ```
@_spi(Kernels) public struct CSRMatrix: Equatable, Sendable {
    /// Column indices, narrow when the columns allow it.
    @_spi(Kernels) public enum Indices: Equatable, Sendable {
        /// 16-bit indices (at most 65,536 columns).
        case narrow([UInt16])
        /// 32-bit indices.
        case wide([UInt32])

        /// The number of indices.
        @_spi(Kernels) public var count: Int {
            switch self {
            case .narrow(let a): return a.count
            case .wide(let a): return a.count
            }
        }

        /// Index `p` as an `Int`.
        @inlinable
        @_spi(Kernels) public subscript(p: Int) -> Int {
            switch self {
            case .narrow(let a): return Int(a[p])
            case .wide(let a): return Int(a[p])
            }
        }

        /// The bytes one index takes (2 or 4).
        @_spi(Kernels) public var byteWidth: Int {
            switch self {
            case .narrow: return 2
            case .wide: return 4
            }
        }
    }

    /// The largest column count that uses 16-bit indices.
    @_spi(Kernels) public static let narrowColumnLimit = 65_536

    /// The number of rows (output neurons for a layer weight).
    public let rows: Int
    /// The number of columns (inputs for a layer weight).
    public let columns: Int
    /// Row offsets, `rows + 1` entries: row `i` is `offsets[i] ..< offsets[i + 1]`.
    @_spi(Kernels) public let offsets: [Int]
    /// Column index of each non-zero, row by row.
    @_spi(Kernels) public let indices: Indices
    /// Value of each non-zero, row by row.
    public let values: [Float]

    /// The number of stored entries.
    public var nonzeroCount: Int { values.count }

    /// The fraction of entries not stored, `1 − nnz / (rows · columns)` (0 for an empty shape).
    public var sparsity: Double {
        rows * columns == 0 ? 0 : 1 - Double(nonzeroCount) / Double(rows * columns)
    }

    /// The bytes the three arrays take: values, indices and offsets (8 bytes each).
    public var byteCount: Int { values.count * 4 + indices.count * indices.byteWidth + offsets.count * 8 }

    /// Creates a CSR matrix from its arrays, checking every invariant.
    ///
    /// - Throws: ``TopiaryError`` of kind `.invalidShape` when the arrays do not describe a valid
    ///   `rows × columns` CSR matrix (see ``validate()``), for example for data read from a file.
    @_spi(Kernels) public init(rows: Int, columns: Int, offsets: [Int], indices: Indices, values: [Float]) throws {
        self.init(unchecked: rows, columns: columns, offsets: offsets, indices: indices, values: values)
        try validate()
    }

    /// Creates a CSR matrix from arrays already known to be valid.
    init(unchecked rows: Int, columns: Int, offsets: [Int], indices: Indices, values: [Float]) {
        self.rows = rows
        self.columns = columns
        self.offsets = offsets
        self.indices = indices
        self.values = values
    }

    /// Creates the CSR form of a dense matrix: every entry that is not exactly `0` is stored.
    ///
    /// - Complexity: O(rows · columns).
    public init(_ matrix: Matrix) {
        let (m, k) = (matrix.rows, matrix.columns)
        var offsets = [Int](repeating: 0, count: m + 1)
        var values: [Float] = []
        values.reserveCapacity(matrix.nonzeroCount)
        var cols: [Int] = []
        cols.reserveCapacity(values.capacity)
        matrix.storage.withUnsafeBufferPointer { w in
            for i in 0..<m {
                let row = i * k
                for j in 0..<k where w[row + j] != 0 {
                    values.append(w[row + j])
                    cols.append(j)
                }
                offsets[i + 1] = values.count
            }
        }
        let indices: Indices = k <= CSRMatrix.narrowColumnLimit
            ? .narrow(cols.map { UInt16(truncatingIfNeeded: $0) })
            : .wide(cols.map { UInt32(truncatingIfNeeded: $0) })
        self.init(unchecked: m, columns: k, offsets: offsets, indices: indices, values: values)
    }

    /// Creates the CSR form of a layer's weight `[out, in]` (for a ``PrunableDense``, its masked
    /// weight: pruned positions are exact zeros and are not stored).
    public init(_ layer: Dense) {
        self.init(layer.weight)
    }

    /// The dense matrix with the same entries (zeros where nothing is stored).
    ///
    /// - Complexity: O(rows · columns + nnz).
    public var dense: Matrix {
        var m = Matrix(rows: rows, columns: columns)
        m.storage.withUnsafeMutableBufferPointer { d in
            for i in 0..<rows {
                for p in offsets[i]..<offsets[i + 1] { d[i * columns + indices[p]] = values[p] }
            }
        }
        return m
    }

    /// Checks every invariant of the format.
    ///
    /// - Throws: ``TopiaryError`` of kind `.invalidShape` naming the first broken invariant:
    ///   negative shape, wrong offsets count, offsets not starting at 0, decreasing, or not ending
    ///   at the number of values, index and value counts differing, a column index out of range or
    ///   not strictly increasing within its row, or 16-bit indices for more than 65,536 columns.
    /// - Complexity: O(rows + nnz).
    @_spi(Kernels) public func validate() throws {
        func fail(_ message: String) -> TopiaryError {
            TopiaryError(.invalidShape, "CSRMatrix (\(rows)×\(columns)): \(message)")
        }
        guard rows >= 0, columns >= 0 else { throw fail("negative shape") }
        guard columns < Int(Int32.max) else { throw fail("more than \(Int32.max - 1) columns") }
        guard offsets.count == rows + 1 else {
            throw fail("expected \(rows + 1) row offsets, got \(offsets.count)")
        }
        guard offsets[0] == 0 else { throw fail("the first row offset is \(offsets[0]), expected 0") }
        guard indices.count == values.count else {
            throw fail("\(indices.count) column indices for \(values.count) values")
        }
        guard offsets[rows] == values.count else {
            throw fail("the last row offset is \(offsets[rows]), expected the \(values.count) values")
        }
        if case .narrow = indices, columns > CSRMatrix.narrowColumnLimit {
            throw fail("16-bit column indices cannot address \(columns) columns")
        }
        for i in 0..<rows where offsets[i] > offsets[i + 1] {
            throw fail("row offsets decrease at row \(i) (\(offsets[i]) then \(offsets[i + 1]))")
        }
        for i in 0..<rows {
            let (start, end) = (offsets[i], offsets[i + 1])
            var previous = -1
            for p in start..<end {
                let j = indices[p]
                guard j < columns else { throw fail("column index \(j) in row \(i) is out of range") }
                guard j > previous else {
                    throw fail("column indices in row \(i) are not strictly increasing (\(previous) then \(j))")
                }
                previous = j
            }
        }
    }

    /// The non-zero count of each row.
    @_spi(Kernels) public var rowCounts: [Int] { (0..<rows).map { offsets[$0 + 1] - offsets[$0] } }
}
