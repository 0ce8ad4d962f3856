/// A dense, row-major matrix of `Float`.
///
/// Element `(i, j)` is stored at `storage[i * columns + j]`. Layers store their weight as
/// `[out, in]` (one row per output neuron), and activations as `[batch, features]`.
///
/// ```swift
/// var m = Matrix(rows: 2, columns: 3)
/// m[1, 2] = 5
/// ```
public struct Matrix: Equatable, Sendable {
    /// The number of rows.
    public let rows: Int
    /// The number of columns.
    public let columns: Int
    /// The elements in row-major order; `storage.count == rows * columns`.
    public var storage: [Float]

    /// Creates a matrix filled with `value`.
    public init(rows: Int, columns: Int, repeating value: Float = 0) {
        require(rows >= 0 && columns >= 0, "Matrix: negative shape \(rows)×\(columns)")
        self.rows = rows
        self.columns = columns
        self.storage = [Float](repeating: value, count: rows * columns)
    }

    /// Creates a matrix from row-major elements.
    ///
    /// - Precondition: `storage.count == rows * columns`.
    public init(rows: Int, columns: Int, storage: [Float]) {
        require(storage.count == rows * columns,
                     "Matrix: expected \(rows * columns) elements for \(rows)×\(columns), got \(storage.count)")
        self.rows = rows
        self.columns = columns
        self.storage = storage
    }

    /// Creates a matrix from an array of equally long rows.
    public init(_ rowArrays: [[Float]]) {
        let columns = rowArrays.first?.count ?? 0
        require(rowArrays.allSatisfy { $0.count == columns }, "Matrix: rows of different lengths")
        self.init(rows: rowArrays.count, columns: columns, storage: rowArrays.flatMap { $0 })
    }

    /// The number of elements, `rows * columns`.
    @inlinable public var count: Int { rows * columns }

    /// The element at row `i`, column `j`.
    @inlinable public subscript(i: Int, j: Int) -> Float {
        get { storage[i * columns + j] }
        set { storage[i * columns + j] = newValue }
    }

    /// Row `i` as an array.
    public func row(_ i: Int) -> [Float] {
        Array(storage[(i * columns)..<((i + 1) * columns)])
    }

    /// The transpose, `columns × rows`.
    public var transposed: Matrix {
        var t = Matrix(rows: columns, columns: rows)
        for i in 0..<rows {
            for j in 0..<columns { t.storage[j * rows + i] = storage[i * columns + j] }
        }
        return t
    }

    /// The number of elements that are not exactly zero.
    public var nonzeroCount: Int {
        storage.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
    }
}

extension Matrix: CustomStringConvertible {
    /// A short description with the shape and, for small matrices, the elements.
    public var description: String {
        if count > 64 { return "Matrix(\(rows)×\(columns))" }
        let body = (0..<rows).map { row($0).map { "\($0)" }.joined(separator: ", ") }.joined(separator: "; ")
        return "Matrix(\(rows)×\(columns): \(body))"
    }
}
