import Foundation
import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

final class DatasetTests: XCTestCase {
    // MARK: Normalization

    func testNormalizationFormula() {
        let n = Normalization(scale: 0.5, mean: 1, std: 4)
        XCTAssertEqual(n(10), 1)          // (10 · 0.5 − 1) / 4
        var m = Matrix(rows: 1, columns: 3, storage: [2, 10, 18])
        n.apply(to: &m)
        XCTAssertEqual(m.storage, [0, 1, 2])
    }

    func testIdentityNormalizationChangesNothing() {
        var m = Matrix(rows: 1, columns: 3, storage: [-1.5, 0, 3.25])
        Normalization.identity.apply(to: &m)
        XCTAssertEqual(m.storage, [-1.5, 0, 3.25])
        XCTAssertTrue(Normalization.identity.isIdentity)
    }

    func testByteTableMatchesFloatMap() {
        let n = Normalization(scale: 1 / 255, mean: 0.2860406, std: 0.3530242)
        let table = n.byteTable
        var m = Matrix(rows: 1, columns: 256, storage: (0..<256).map { Float($0) })
        n.apply(to: &m)
        XCTAssertEqual(m.storage.map(\.bitPattern), table.map(\.bitPattern))
    }

    func testNormalizationIsCodable() throws {
        let n = Normalization(scale: 1 / 255, mean: 0.2860406, std: 0.3530242)
        let back = try JSONDecoder().decode(Normalization.self, from: JSONEncoder().encode(n))
        XCTAssertEqual(back, n)
    }

    func testStandardizationOfKnownBytes() throws {
        let pixels: [UInt8] = [0, 255, 0, 255]
        let n = try pixels.withUnsafeBufferPointer { try FashionMNIST.standardization(of: $0, scale: 1 / 255) }
        XCTAssertEqual(n.mean, 0.5, accuracy: 1e-7)
        XCTAssertEqual(n.std, 0.5, accuracy: 1e-7)
        XCTAssertEqual(n(0), -1, accuracy: 1e-6)
        XCTAssertEqual(n(255), 1, accuracy: 1e-6)
    }

    // MARK: LabeledData

    func testSubsetAndPrefixCopyRows() throws {
        let data = try LabeledData(images: Matrix(rows: 4, columns: 2, storage: [0, 1, 2, 3, 4, 5, 6, 7]), labels: [9, 8, 7, 6])
        let mid = data.subset(1..<3)
        XCTAssertEqual(mid.images.storage, [2, 3, 4, 5])
        XCTAssertEqual(mid.labels, [8, 7])
        XCTAssertEqual(data.prefix(1).labels, [9])
        XCTAssertEqual(data.prefix(10).count, 4)
        XCTAssertEqual(data.classHistogram(classCount: 10), [0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    }

    func testNonFiniteFeaturesAreReported() throws {
        var data = try LabeledData(images: Matrix(rows: 2, columns: 2, storage: [0, 1, 2, 3]), labels: [0, 1])
        XCTAssertNoThrow(try data.checkFinite(source: "x"))
        data.images[1, 1] = .nan
        let error = assertThrowsTopiaryError(.nonFinite, try data.checkFinite(source: "x"))
        XCTAssertTrue(error?.message.contains("example 1") ?? false)
        data.images[1, 1] = -.infinity
        XCTAssertEqual(data.images.firstNonFiniteIndex, 3)
    }

    // MARK: Fashion-MNIST layout on small synthetic files

    /// Writes a Fashion-MNIST folder with `train` and `test` images whose pixels all equal their
    /// index (mod 256) and whose labels are `index % 10`.
    func makeFolder(train: Int = 30, test: Int = 12, gzip: Bool = true) throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory()
        func write(_ name: String, _ bytes: [UInt8]) throws {
            if gzip { try writeGzip(bytes, to: dir.file(name + ".gz")) } else { try dir.write(name, bytes) }
        }
        func images(_ n: Int) -> [UInt8] { (0..<n).flatMap { [UInt8](repeating: UInt8($0 % 256), count: 784) } }
        func labels(_ n: Int) -> [UInt8] { (0..<n).map { UInt8($0 % 10) } }
        try write("train-images-idx3-ubyte", idxBytes(dimensions: [train, 28, 28], data: images(train)))
        try write("train-labels-idx1-ubyte", idxBytes(dimensions: [train], data: labels(train)))
        try write("t10k-images-idx3-ubyte", idxBytes(dimensions: [test, 28, 28], data: images(test)))
        try write("t10k-labels-idx1-ubyte", idxBytes(dimensions: [test], data: labels(test)))
        return dir
    }

    func testSplitsValidationFromTheEndOfTraining() throws {
        let dir = try makeFolder()
        let data = try FashionMNIST.load(directory: dir.path, validationCount: 5, standardize: false)
        XCTAssertEqual(data.train.count, 25)
        XCTAssertEqual(data.validation.count, 5)
        XCTAssertEqual(data.test.count, 12)
        XCTAssertEqual(data.classCount, 10)
        XCTAssertEqual(data.normalization, .unitInterval)
        XCTAssertEqual(data.validation.labels, [5, 6, 7, 8, 9])
        XCTAssertEqual(data.validation.images[0, 0], Normalization.unitInterval(25))
        XCTAssertEqual(data.train.images[24, 783], Normalization.unitInterval(24))
        XCTAssertEqual(data.test.images[11, 0], Normalization.unitInterval(11))
    }

    func testRawAndGzipFoldersLoadTheSame() throws {
        let rawFolder = try makeFolder(gzip: false), gzFolder = try makeFolder(gzip: true)
        let raw = try FashionMNIST.load(directory: rawFolder.path, validationCount: 5)
        let gz = try FashionMNIST.load(directory: gzFolder.path, validationCount: 5)
        XCTAssertEqual(raw.train.images, gz.train.images)
        XCTAssertEqual(raw.test.labels, gz.test.labels)
        XCTAssertEqual(raw.normalization, gz.normalization)
    }

    func testStandardizesWithTrainingPixelsOnly() throws {
        let dir = try makeFolder()
        let data = try FashionMNIST.load(directory: dir.path, validationCount: 10, trainLimit: 4)
        XCTAssertEqual(data.train.count, 4)
        XCTAssertEqual(data.validation.count, 10)
        // Training pixels are 0, 1, 2, 3 (each 784 times): mean 1.5, std √1.25, times the Float scale.
        let scale = Double(Float(1.0 / 255))
        XCTAssertEqual(data.normalization.mean, Float(1.5 * scale))
        XCTAssertEqual(data.normalization.std, Float(1.25.squareRoot() * scale))
        let mean = data.train.images.storage.reduce(0, +) / Float(data.train.images.count)
        XCTAssertEqual(mean, 0, accuracy: 1e-5)
    }

    func testExplicitNormalizationWins() throws {
        let dir = try makeFolder()
        let n = Normalization(scale: 2, mean: 1, std: 1)
        let data = try FashionMNIST.load(directory: dir.path, validationCount: 5, testLimit: 3, normalization: n)
        XCTAssertEqual(data.normalization, n)
        XCTAssertEqual(data.test.count, 3)
        XCTAssertEqual(data.test.images[2, 5], 3)
    }

    func testMissingFileNamesItAndTheInstallCommand() throws {
        let dir = try makeFolder()
        try FileManager.default.removeItem(atPath: dir.file("t10k-labels-idx1-ubyte.gz"))
        let error = assertThrowsTopiaryError(.fileNotFound, try FashionMNIST.load(directory: dir.path))
        XCTAssertTrue(error?.message.contains("t10k-labels-idx1-ubyte") ?? false)
        XCTAssertTrue(error?.message.contains("apt-get install dataset-fashion-mnist") ?? false)
        XCTAssertTrue(error?.message.contains("--data-dir") ?? false)
        assertThrowsTopiaryError(.fileNotFound, try FashionMNIST.load(directory: dir.path + "/nowhere"))
    }

    func testLabelOutOfRangeIsCorrupt() throws {
        let dir = try makeFolder(gzip: false)
        try dir.write("t10k-labels-idx1-ubyte", idxBytes(dimensions: [12], data: [UInt8](repeating: 3, count: 11) + [10]))
        let error = assertThrowsTopiaryError(.corruptFile, try FashionMNIST.load(directory: dir.path, validationCount: 5))
        XCTAssertTrue(error?.message.contains("label 10") ?? false)
    }

    func testImageAndLabelCountsMustAgree() throws {
        let dir = try makeFolder(gzip: false)
        try dir.write("train-labels-idx1-ubyte", idxBytes(dimensions: [29], data: [UInt8](repeating: 1, count: 29)))
        assertThrowsTopiaryError(.invalidShape, try FashionMNIST.load(directory: dir.path, validationCount: 5))
    }

    func testImagesMustBe28By28() throws {
        let dir = try makeFolder(gzip: false)
        try dir.write("t10k-images-idx3-ubyte", idxBytes(dimensions: [12, 784], data: [UInt8](repeating: 1, count: 12 * 784)))
        assertThrowsTopiaryError(.invalidShape, try FashionMNIST.load(directory: dir.path, validationCount: 5))
    }

    func testOptionsOutOfRange() throws {
        let dir = try makeFolder()
        assertThrowsTopiaryError(.invalidOption, try FashionMNIST.load(directory: dir.path, validationCount: 30))
        assertThrowsTopiaryError(.invalidOption, try FashionMNIST.load(directory: dir.path, validationCount: -1))
        assertThrowsTopiaryError(.invalidOption, try FashionMNIST.load(directory: dir.path, validationCount: 5, trainLimit: 0))
        assertThrowsTopiaryError(.invalidOption,
                                 try FashionMNIST.load(directory: dir.path, normalization: Normalization(scale: 1, mean: 0, std: 0)))
    }

    // MARK: The real dataset

    func testRealFashionMNIST() throws {
        let directory = FashionMNIST.defaultDirectory
        guard FileManager.default.fileExists(atPath: directory) else {
            throw XCTSkip("Fashion-MNIST is not installed at \(directory) (apt-get install dataset-fashion-mnist)")
        }
        let start = Date()
        let data = try FashionMNIST.load(directory: directory)
        print("Fashion-MNIST loaded in \(Date().timeIntervalSince(start)) s")
        XCTAssertEqual(data.train.count, 55_000)
        XCTAssertEqual(data.validation.count, 5_000)
        XCTAssertEqual(data.test.count, 10_000)
        XCTAssertEqual(data.featureCount, 784)
        XCTAssertEqual(data.test.classHistogram(classCount: 10), [Int](repeating: 1_000, count: 10))
        XCTAssertEqual(data.train.classHistogram(classCount: 10).reduce(0, +), 55_000)
        // The published statistics of the 60,000 training pixels are mean 0.2860, std 0.3530.
        XCTAssertEqual(data.normalization.scale, 1 / 255)
        XCTAssertEqual(data.normalization.mean, 0.286, accuracy: 0.002)
        XCTAssertEqual(data.normalization.std, 0.353, accuracy: 0.002)
        var sum = 0.0, squares = 0.0
        data.train.images.storage.withUnsafeBufferPointer { p in
            guard let base = p.baseAddress else { return }
            for i in 0..<p.count { let v = Double(base[i]); sum += v; squares += v * v }
        }
        let n = Double(data.train.images.count)
        let mean = sum / n
        XCTAssertEqual(mean, 0, accuracy: 1e-5)
        XCTAssertEqual((squares / n - mean * mean).squareRoot(), 1, accuracy: 1e-5)
        XCTAssertNoThrow(try data.test.checkFinite(source: "test"))
    }
}
