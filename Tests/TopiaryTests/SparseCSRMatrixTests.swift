import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

final class SparseCSRMatrixTests: XCTestCase {
    func testBuildsTheNonzerosRowByRow() throws {
        let m = Matrix([[0, 2, 0, 3], [0, 0, 0, 0], [-1, 0, 0, 4]])
        let csr = CSRMatrix(m)
        XCTAssertEqual(csr.rows, 3)
        XCTAssertEqual(csr.columns, 4)
        XCTAssertEqual(csr.offsets, [0, 2, 2, 4])
        XCTAssertEqual(csr.indices, .narrow([1, 3, 0, 3]))
        XCTAssertEqual(csr.values, [2, 3, -1, 4])
        XCTAssertEqual(csr.nonzeroCount, 4)
        XCTAssertEqual(csr.sparsity, 1 - 4.0 / 12.0, accuracy: 1e-12)
        XCTAssertEqual(csr.rowCounts, [2, 0, 2])
        XCTAssertNoThrow(try csr.validate())
    }

    func testRoundTripIsExactAcrossShapesAndSparsities() {
        var rng = SeededRandom(seed: 11)
        for (m, k) in [(1, 1), (7, 7), (13, 129), (129, 13), (300, 784)] {
            for s in [0, 0.5, 0.9, 0.99, 1.0] {
                let w = SparseTestSupport.randomMatrix(m, k, sparsity: s, rng: &rng)
                let csr = CSRMatrix(w)
                XCTAssertEqual(csr.dense, w, "\(m)x\(k) at \(s)")
                XCTAssertEqual(csr.nonzeroCount, w.nonzeroCount)
                XCTAssertNoThrow(try csr.validate())
            }
        }
    }

    func testBuiltFromAPrunableDenseKeepsExactlyTheMaskedWeights() throws {
        var rng = SeededRandom(seed: 3)
        let layer = try Dense(50 => 20, .relu, using: &rng)
        layer.prune { $0 % 3 != 0 }
        let csr = CSRMatrix(layer)
        XCTAssertEqual(csr.nonzeroCount, layer.keptCount)
        XCTAssertEqual(csr.dense, layer.weight)
        XCTAssertEqual(csr.sparsity, layer.sparsity, accuracy: 1e-12)
    }

    func testIndicesAreNarrowUpTo65536ColumnsAndWideBeyond() {
        var narrow = Matrix(rows: 1, columns: 65_536)
        narrow[0, 65_535] = 1
        let a = CSRMatrix(narrow)
        XCTAssertEqual(a.indices, .narrow([65_535]))
        XCTAssertEqual(a.indices.byteWidth, 2)
        XCTAssertEqual(a.dense, narrow)

        var wide = Matrix(rows: 2, columns: 65_537)
        wide[1, 65_536] = -2
        wide[0, 3] = 1
        let b = CSRMatrix(wide)
        XCTAssertEqual(b.indices, .wide([3, 65_536]))
        XCTAssertEqual(b.indices.byteWidth, 4)
        XCTAssertEqual(b.dense, wide)
        XCTAssertEqual(b.byteCount, 2 * 4 + 2 * 4 + 3 * 8)
    }

    func testThrowingInitAcceptsValidArrays() throws {
        let csr = try CSRMatrix(rows: 2, columns: 3, offsets: [0, 1, 3], indices: .narrow([2, 0, 1]), values: [1, 2, 3])
        XCTAssertEqual(csr.dense, Matrix([[0, 0, 1], [2, 3, 0]]))
    }

    private func assertRejected(rows: Int = 2, columns: Int = 3, offsets: [Int], indices: CSRMatrix.Indices,
                                values: [Float], mentioning word: String, line: UInt = #line) {
        XCTAssertThrowsError(try CSRMatrix(rows: rows, columns: columns, offsets: offsets, indices: indices, values: values),
                             line: line) { error in
            guard let e = error as? TopiaryError else { return XCTFail("untyped error \(error)", line: line) }
            XCTAssertEqual(e.kind, .invalidShape, line: line)
            XCTAssertTrue(e.message.contains(word), "message \"\(e.message)\" lacks \"\(word)\"", line: line)
        }
    }

    func testRejectsWrongOffsetCount() {
        assertRejected(offsets: [0, 1], indices: .narrow([0]), values: [1], mentioning: "row offsets")
    }

    func testRejectsOffsetsNotStartingAtZero() {
        assertRejected(offsets: [1, 1, 1], indices: .narrow([0]), values: [1], mentioning: "first row offset")
    }

    func testRejectsDecreasingOffsets() {
        assertRejected(offsets: [0, 2, 1], indices: .narrow([0]), values: [1], mentioning: "decrease")
    }

    func testRejectsLastOffsetDifferentFromValueCount() {
        assertRejected(offsets: [0, 1, 1], indices: .narrow([0, 1]), values: [1, 2], mentioning: "last row offset")
    }

    func testRejectsIndexAndValueCountsThatDiffer() {
        assertRejected(offsets: [0, 1, 2], indices: .narrow([0]), values: [1, 2], mentioning: "column indices for")
    }

    func testRejectsColumnIndexOutOfRange() {
        assertRejected(offsets: [0, 1, 2], indices: .wide([0, 3]), values: [1, 2], mentioning: "out of range")
    }

    func testRejectsUnsortedIndicesWithinARow() {
        assertRejected(offsets: [0, 2, 2], indices: .narrow([2, 1]), values: [1, 2], mentioning: "strictly increasing")
    }

    func testRejectsDuplicateIndicesWithinARow() {
        assertRejected(offsets: [0, 2, 2], indices: .narrow([1, 1]), values: [1, 2], mentioning: "strictly increasing")
    }

    func testRejectsNegativeShape() {
        assertRejected(rows: -1, offsets: [0], indices: .narrow([]), values: [], mentioning: "negative")
    }

    func testRejectsNarrowIndicesForTooManyColumns() {
        assertRejected(rows: 1, columns: 70_000, offsets: [0, 1], indices: .narrow([5]), values: [1], mentioning: "16-bit")
    }

    func testIndicesMayRestartInANewRow() throws {
        XCTAssertNoThrow(try CSRMatrix(rows: 2, columns: 3, offsets: [0, 2, 4], indices: .narrow([0, 2, 0, 2]),
                                       values: [1, 2, 3, 4]))
    }
}
