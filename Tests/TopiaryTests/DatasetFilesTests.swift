import Foundation
import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

/// Datasets of the user's own: `.npz` (stored and deflated, as NumPy writes them), folders of
/// `.npy` and of IDX files; one hostile file per case (made by Fixtures/datasets/make.py).
final class DatasetFilesTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/datasets")
    func fixture(_ name: String) -> String { Self.fixtures.appendingPathComponent(name).path }

    /// The fixtures' arrays, as make.py draws them: 40 training and 10 test images of 4×4 bytes, labels i % 3.
    func assertTiny(_ data: Dataset, scale: Float, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(data.classCount, 3, file: file, line: line)
        XCTAssertEqual(data.train.images.columns, 16, file: file, line: line)
        XCTAssertEqual(data.train.count, 30, "40 rows minus 10 for validation", file: file, line: line)
        XCTAssertEqual(data.validation.count, 10, file: file, line: line)
        XCTAssertEqual(data.test.count, 10, file: file, line: line)
        XCTAssertEqual(data.train.labels, (0..<30).map { Int32($0 % 3) }, file: file, line: line)
        XCTAssertEqual(data.validation.labels, (30..<40).map { Int32($0 % 3) }, file: file, line: line)
        // Standardised on the 30 training rows: mean 0, standard deviation 1 (population).
        let x = data.train.images.storage.map(Double.init)
        let mean = x.reduce(0, +) / Double(x.count)
        let std = (x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(x.count)).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 1e-5, file: file, line: line)
        XCTAssertEqual(std, 1, accuracy: 1e-5, file: file, line: line)
        XCTAssertEqual(data.normalization.scale, scale, file: file, line: line)
    }

    func testCompressedNpzAsNumPyWritesIt() throws {
        let data = try Dataset.load(contentsOf: fixture("tiny.npz"), validationCount: 10)
        try assertTiny(data, scale: 1 / 255)
    }

    func testEveryLayoutGivesTheSameBytes() throws {
        let npz = try Dataset.load(contentsOf: fixture("tiny.npz"), validationCount: 10)
        let npy = try Dataset.load(contentsOf: fixture("tiny-npy"), validationCount: 10)
        let idx = try Dataset.load(contentsOf: fixture("tiny-idx"), validationCount: 10)
        for other in [npy, idx] {
            try assertTiny(other, scale: 1 / 255)
            XCTAssertEqual(other.train.images.storage, npz.train.images.storage)
            XCTAssertEqual(other.test.images.storage, npz.test.images.storage)
            XCTAssertEqual(other.normalization, npz.normalization)
        }
    }

    func testFloatInputsAreTakenAsTheyAre() throws {
        let data = try Dataset.load(contentsOf: fixture("tiny-float.npz"), validationCount: 10, standardize: false)
        let bytes = try Dataset.load(contentsOf: fixture("tiny.npz"), validationCount: 10, standardize: false)
        XCTAssertEqual(data.normalization, .identity)
        // make.py stores float32(x) / 10.
        for (f, b) in zip(data.train.images.storage, bytes.train.images.storage) { XCTAssertEqual(f, Float(Float(b * 255).rounded()) / 10, accuracy: 1e-5) }
        try assertTiny(try Dataset.load(contentsOf: fixture("tiny-float.npz"), validationCount: 10), scale: 1)
    }

    func testAModelsNormalizationIsAppliedAsSaved() throws {
        let n = Normalization(scale: 0.5, mean: 3, std: 2)
        let data = try Dataset.load(contentsOf: fixture("tiny.npz"), validationCount: 0, trainLimit: 5, testLimit: 2, normalization: n)
        XCTAssertEqual(data.train.count, 5)
        XCTAssertEqual(data.test.count, 2)
        XCTAssertEqual(data.normalization, n)
    }

    func testNpyVersionTwoReads() throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture("hostile/v2.npy"))))
        let array = try NumPyArray.parse(bytes, name: "v2.npy")
        XCTAssertEqual(array.shape, [40, 4, 4])
        XCTAssertEqual(array.element, .uint8)
    }

    /// Each hostile file: a `TopiaryError` of the expected kind whose one-line message names the file and the problem.
    func testHostileFilesGiveTypedErrors() throws {
        let cases: [(String, TopiaryError.Kind, String)] = [
            ("bad-magic.npy", .corruptFile, "not a .npy file"),
            ("header-past-end.npy", .corruptFile, "past the end of the file"),
            ("big-endian.npy", .corruptFile, "big-endian"),
            ("fortran.npy", .corruptFile, "Fortran-order"),
            ("object.npy", .corruptFile, "is not supported"),
            ("shape-overflow.npy", .corruptFile, "is too large"),
            ("short-data.npy", .corruptFile, "bytes of data"),
            ("version-9.npy", .corruptFile, "format version 9.0"),
            ("truncated.npz", .corruptFile, "end record is missing"),
            ("directory-past-end.npz", .corruptFile, "lies past the end"),
            ("nan.npz", .nonFinite, "NaN or infinite"),
            ("negative-label.npz", .corruptFile, "label -1 at index 0 is outside"),
            ("float-labels.npz", .corruptFile, "labels must be integers"),
            ("count-mismatch.npz", .invalidShape, "labels of shape [39] for 40 inputs"),
            ("width-mismatch.npz", .invalidShape, "16 values per row, test inputs 12"),
            ("missing-member.npz", .fileNotFound, "has no y_test.npy"),
            ("bomb.npz", .corruptFile, "inflates past the 1000 bytes it declares"),
            ("stored-size.npz", .corruptFile, "is stored with"),
            ("damaged-deflate.npz", .corruptFile, "x_train.npy"),
            ("not-a-zip.npz", .corruptFile, "is not a .npz (ZIP) archive"),
        ]
        for (name, kind, text) in cases {
            let path = fixture("hostile/\(name)")
            do {
                if name.hasSuffix(".npy") {
                    _ = try NumPyArray.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))), name: path)
                } else {
                    _ = try Dataset.load(contentsOf: path, validationCount: 1)
                }
                XCTFail("\(name) was accepted")
            } catch let error as TopiaryError {
                XCTAssertEqual(error.kind, kind, "\(name): \(error.message)")
                XCTAssert(error.message.contains(text), "\(name): \(error.message)")
                XCTAssert(error.message.contains(name), "the message names the file: \(error.message)")
                XCTAssertFalse(error.message.contains("\n"), "one line: \(error.message)")
            }
        }
    }

    func testMissingPathsAndFoldersSayWhatIsExpected() {
        XCTAssertThrowsError(try Dataset.load(contentsOf: "/nonexistent/data.npz")) { error in
            XCTAssert("\(error)".contains("--dataset takes fashion-mnist, a .npz file, or a folder of .npy or IDX files"), "\(error)")
        }
        XCTAssertThrowsError(try Dataset.load(contentsOf: Self.fixtures.appendingPathComponent("hostile").path)) { error in
            XCTAssert("\(error)".contains("no IDX file ending in train-images-idx3-ubyte"), "\(error)")
        }
    }

    func testArchiveMembersInflateTheSameInSmallChunks() throws {
        // zlib counts in 32 bits: members over 4 GiB are inflated and checksummed in chunks
        // (handing zlib 5 GB at once trapped). Small chunks take the same path on small members.
        for name in ["tiny.npz", "tiny-float.npz"] {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture(name))))
            let zip = try ZipArchive(bytes: bytes, name: name)
            XCTAssertEqual(zip.entries.count, 4)
            for entry in zip.entries {
                let whole = try zip.contents(of: entry, maximumSize: 1 << 20)
                XCTAssertEqual(whole.count, entry.size)
                for chunk in [1, 5, 64, 1000] {
                    XCTAssertEqual(try zip.contents(of: entry, maximumSize: 1 << 20, chunk: chunk), whole, "\(name) \(entry.name) chunk \(chunk)")
                }
            }
        }
        let bomb = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture("hostile/bomb.npz"))))
        let zip = try ZipArchive(bytes: bomb, name: "bomb.npz")
        for chunk in [1, 3, 1000] {
            let error = assertThrowsTopiaryError(.corruptFile, try zip.entries.forEach { _ = try zip.contents(of: $0, maximumSize: 1 << 20, chunk: chunk) })
            XCTAssertTrue(error?.message.contains("inflates past") ?? false, error?.message ?? "")
        }
    }
}
