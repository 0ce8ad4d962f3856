import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

final class DatasetBatchesTests: XCTestCase {
    /// Ten examples of three features; example `i` holds `[i, i + 0.25, i + 0.5]` and label `i`.
    let data = try! LabeledData(images: Matrix(rows: 10, columns: 3, storage: (0..<10).flatMap { i in [0, 0.25, 0.5].map { Float(i) + $0 } }),
                           labels: (0..<10).map { Int32($0) })

    /// The labels of every batch, in order, after checking that each row matches its label.
    func visit(_ batches: inout Batches) -> [[Int32]] {
        (0..<batches.batchCount).map { b in
            batches.withBatch(b) { images, labels, size in
                (0..<size).map { r in
                    let label = labels[r]
                    XCTAssertEqual(images[r * 3], Float(label))
                    XCTAssertEqual(images[r * 3 + 2], Float(label) + 0.5)
                    return label
                }
            }
        }
    }

    func testNaturalOrderWithPartialLastBatch() {
        var batches = Batches(data, batchSize: 4)
        XCTAssertEqual(batches.batchCount, 3)
        XCTAssertEqual(batches.size(ofBatch: 2), 2)
        XCTAssertEqual(visit(&batches), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
    }

    func testDropLastLeavesOutThePartialBatch() {
        var batches = Batches(data, batchSize: 4, dropLast: true)
        XCTAssertEqual(batches.batchCount, 2)
        XCTAssertEqual(batches.exampleCount, 8)
        XCTAssertEqual(visit(&batches).count, 2)
    }

    func testShuffleVisitsEveryExampleOnce() {
        var batches = Batches(data, batchSize: 3)
        var rng = SeededRandom(seed: 7)
        for _ in 0..<3 {
            batches.shuffle(using: &rng)
            let seen = visit(&batches).flatMap { $0 }
            XCTAssertEqual(seen.sorted(), (0..<10).map { Int32($0) })
        }
    }

    func testSameSeedSameOrder() {
        var a = Batches(data, batchSize: 3), b = Batches(data, batchSize: 3)
        var ra = SeededRandom(seed: 42), rb = SeededRandom(seed: 42)
        a.shuffle(using: &ra); b.shuffle(using: &rb)
        XCTAssertEqual(a.order, b.order)
        XCTAssertNotEqual(a.order, (0..<10).map { Int32($0) })
    }

    func testEpochShuffleDependsOnlyOnSeedAndEpoch() {
        var a = Batches(data, batchSize: 3), b = Batches(data, batchSize: 3)
        a.shuffle(seed: 1, epoch: 0); a.shuffle(seed: 1, epoch: 1)
        b.shuffle(seed: 1, epoch: 1)
        XCTAssertEqual(a.order, b.order)
        b.shuffle(seed: 1, epoch: 2)
        XCTAssertNotEqual(a.order, b.order)
        a.resetOrder()
        XCTAssertEqual(a.order, (0..<10).map { Int32($0) })
    }

    func testBatchLargerThanData() {
        var batches = Batches(data, batchSize: 64)
        XCTAssertEqual(batches.batchCount, 1)
        XCTAssertEqual(visit(&batches), [(0..<10).map { Int32($0) }])
        var dropped = Batches(data, batchSize: 64, dropLast: true)
        XCTAssertEqual(dropped.batchCount, 0)
        XCTAssertEqual(visit(&dropped), [])
    }

    func testBuffersAreReusedAcrossBatches() {
        var batches = Batches(data, batchSize: 4)
        let first = batches.withBatch(0) { p, _, _ in UInt(bitPattern: p) }
        let second = batches.withBatch(1) { p, _, _ in UInt(bitPattern: p) }
        XCTAssertEqual(first, second)
    }
}
