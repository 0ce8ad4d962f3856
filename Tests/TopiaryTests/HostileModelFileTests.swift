import Foundation
import XCTest
@_spi(Kernels) @_spi(Benchmarking) @_spi(Files) @testable import Topiary

/// Model files written outside Topiary (`Fixtures/make_fixtures.py`): a valid version-2 file
/// that must load as its writer meant, and one malformed file per rule of the masked and
/// compressed layouts, each refused with a ``TopiaryError`` that names the file and the problem.
final class HostileModelFileTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// The path of `Fixtures/hostile/<name>.safetensors`.
    func hostile(_ name: String) -> String {
        Self.fixtures.appendingPathComponent("hostile/\(name).safetensors").path
    }

    /// Asserts that loading the hostile file `name` (as a model, and compiled) throws `kind`
    /// with a one-line message that starts with the path and contains every one of `words`.
    func assertRefused(_ name: String, _ kind: TopiaryError.Kind = .corruptFile, mentioning words: [String],
                       file: StaticString = #filePath, line: UInt = #line) {
        let path = hostile(name)
        XCTAssert(FileManager.default.fileExists(atPath: path), "missing fixture \(path)", file: file, line: line)
        for (what, load) in [("Model.load", { _ = try Model.load(from: path) }),
                             ("CompiledNetwork", { _ = try CompiledNetwork(contentsOf: path, batchSize: 1, policy: .sparse, threads: 1) })] {
            guard let error = assertThrowsTopiaryError(kind, try load(), file: file, line: line) else { continue }
            XCTAssert(error.message.hasPrefix(path + ": "), "\(what): \(error.message)", file: file, line: line)
            XCTAssertFalse(error.message.contains("\n"), "\(what): one line: \(error.message)", file: file, line: line)
            for word in words {
                XCTAssert(error.message.contains(word), "\(what): \"\(word)\" not in: \(error.message)", file: file, line: line)
            }
        }
    }

    static let tested: Set<String> = [
        "csr-offsets-decrease", "csr-offsets-not-from-zero", "csr-offsets-disagree-with-nnz", "csr-offsets-wrong-shape",
        "csr-offsets-wrong-dtype", "csr-column-out-of-range", "csr-column-negative", "csr-columns-unsorted",
        "csr-columns-duplicated", "csr-indices-wrong-dtype", "csr-indices-count-disagrees", "csr-indices-missing",
        "csr-values-wrong-dtype", "csr-values-nan", "csr-values-f16-infinity", "csr-with-dense-weight",
        "csr-narrow-indices-for-wide-layer", "architecture-too-large", "mask-too-few-bytes", "mask-padding-bits-set",
        "mask-one-byte-per-weight", "mask-missing", "masked-weight-where-pruned", "masked-weight-infinite",
        "bias-mask-wrong-size", "encoding-unknown", "encodings-count-disagrees", "encodings-missing", "format-version-3",
    ]

    func testEveryHostileFixtureHasItsTest() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.fixtures.appendingPathComponent("hostile").path)
            .filter { $0.hasSuffix(".safetensors") }.map { String($0.dropLast(".safetensors".count)) }
        XCTAssertEqual(Set(names), Self.tested)
    }

    func testTheValidFileWrittenOutsideTopiaryLoadsAsItsWriterMeant() throws {
        let path = Self.fixtures.appendingPathComponent("good-v2.safetensors").path
        let model = try Model.load(from: path)
        XCTAssertEqual(model.network.sizes, [6, 4, 3])
        let (first, second) = (model.network.layers[0], model.network.layers[1])
        XCTAssertEqual(first.weight.storage, [0.5, 0, -1, 0, 0, 0,
                                              0, 0, 0, 0, 0, 0,
                                              0, 0.25, 0, 0, 0, 2,
                                              0, 0, 0, 0, -0.75, 0])
        XCTAssertEqual(first.mask?.storage, [1, 0, 1, 0, 0, 0,
                                             0, 0, 0, 0, 0, 0,
                                             0, 1, 0, 1, 0, 1,
                                             0, 0, 0, 0, 1, 0], "the stored pattern, the explicit zero included")
        XCTAssertEqual(first.bias, [0.1, 0.2, 0.3, 0.4])
        XCTAssertEqual(second.mask?.storage, [1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1], "bits least significant first")
        XCTAssertEqual(second.weight.storage, [1, 0, 2, 3, 0, 4, 0, 0, 5, 6, 7, 8])
        XCTAssertEqual(model.network.layers.map(\.activation), [.relu, .identity])
        // Saved again by Topiary with the same encodings, it loads to the same model.
        let dir = try TemporaryDirectory()
        try model.save(to: dir.file("again.safetensors"))
        let again = try SafeTensors.read(from: dir.file("again.safetensors"))
        XCTAssertEqual(again.metadata["layer_encodings"], "csr,masked")
        XCTAssertEqual(again.tensors["layers.0.values"], try SafeTensors.read(from: path).tensors["layers.0.values"])
        XCTAssertEqual(again.tensors["layers.1.mask"]?.bytes, [0x2D, 0x0F])
    }

    // MARK: CSR row offsets

    func testCSRRowOffsetsThatDecrease() { assertRefused("csr-offsets-decrease", mentioning: ["layers.0.row_offsets", "decrease at row 1"]) }
    func testCSRRowOffsetsNotFromZero() { assertRefused("csr-offsets-not-from-zero", mentioning: ["layers.0.row_offsets", "starts at 1"]) }
    func testCSRRowOffsetsDisagreeingWithTheValues() {
        assertRefused("csr-offsets-disagree-with-nnz", mentioning: ["ends at 5", "holds 6 entries"])
    }
    func testCSRRowOffsetsOfTheWrongShape() { assertRefused("csr-offsets-wrong-shape", mentioning: ["layers.0.row_offsets", "[5]", "6-4-3"]) }
    func testCSRRowOffsetsOfTheWrongDtype() { assertRefused("csr-offsets-wrong-dtype", mentioning: ["layers.0.row_offsets", "U32", "I32 or I64"]) }

    // MARK: CSR column indices

    func testCSRColumnOutOfRange() { assertRefused("csr-column-out-of-range", mentioning: ["layers.0.col_indices", "6 in row 3", "out of range"]) }
    func testCSRNegativeColumn() { assertRefused("csr-column-negative", mentioning: ["layers.0.col_indices", "-1"]) }
    func testCSRUnsortedColumns() { assertRefused("csr-columns-unsorted", mentioning: ["row 2", "not strictly increasing", "3 then 1"]) }
    func testCSRDuplicatedColumns() { assertRefused("csr-columns-duplicated", mentioning: ["row 2", "not strictly increasing", "1 then 1"]) }
    func testCSRColumnIndicesOfTheWrongDtype() { assertRefused("csr-indices-wrong-dtype", mentioning: ["layers.0.col_indices", "F16"]) }
    func testCSRColumnIndicesDisagreeingWithTheValues() { assertRefused("csr-indices-count-disagrees", mentioning: ["layers.0.col_indices", "[5]", "[6]"]) }
    func testCSRColumnIndicesMissing() { assertRefused("csr-indices-missing", mentioning: ["layers.0.col_indices", "missing", "csr"]) }
    func testSixteenBitColumnIndicesForALayerWiderThan65536() {
        assertRefused("csr-narrow-indices-for-wide-layer", mentioning: ["layers.0.col_indices", "U16", "expected I32"])
    }

    // MARK: CSR values

    func testCSRValuesOfTheWrongDtype() { assertRefused("csr-values-wrong-dtype", mentioning: ["layers.0.values", "I32", "F32 or F16"]) }
    func testCSRValueNaN() { assertRefused("csr-values-nan", .nonFinite, mentioning: ["layers.0.values", "nan", "index 2"]) }
    func testCSRValueF16Infinity() { assertRefused("csr-values-f16-infinity", .nonFinite, mentioning: ["layers.0.values", "inf"]) }
    func testCSRLayerWithADenseWeightToo() { assertRefused("csr-with-dense-weight", mentioning: ["unexpected tensor \"layers.0.weight\"", "csr,masked"]) }

    // MARK: Sizes

    func testArchitectureTooLargeForAModelFileIsRefusedBeforeAllocating() {
        assertRefused("architecture-too-large", .invalidShape, mentioning: ["2000000000-1", "bytes"])
    }

    // MARK: Masks

    func testMaskBitCountDisagreeingWithTheShape() { assertRefused("mask-too-few-bytes", mentioning: ["layers.1.mask", "U8 [2]", "12 mask bits"]) }
    func testMaskPaddingBitsSet() { assertRefused("mask-padding-bits-set", mentioning: ["layers.1.mask", "beyond its 12 entries"]) }
    func testOneBytePerWeightMaskInAVersion2File() { assertRefused("mask-one-byte-per-weight", mentioning: ["layers.1.mask", "[3, 4]", "packed"]) }
    func testMaskedLayerWithoutItsMask() { assertRefused("mask-missing", mentioning: ["layers.1.mask", "missing", "masked"]) }
    func testNonZeroWeightWhereTheMaskPrunes() { assertRefused("masked-weight-where-pruned", mentioning: ["layers.1.weight", "9.0 at index 1"]) }
    func testInfiniteWeight() { assertRefused("masked-weight-infinite", .nonFinite, mentioning: ["layers.1.weight", "inf"]) }
    func testBiasMaskOfTheWrongSize() { assertRefused("bias-mask-wrong-size", mentioning: ["layers.1.bias_mask", "U8 [1]", "3 mask bits"]) }

    // MARK: Metadata

    func testUnknownEncodingName() { assertRefused("encoding-unknown", mentioning: ["layer 1", "unknown encoding \"sparse\"", "dense, masked, csr"]) }
    func testEncodingsForTheWrongNumberOfLayers() { assertRefused("encodings-count-disagrees", mentioning: ["layer_encodings", "1 layers", "has 2"]) }
    func testVersion2WithoutEncodings() { assertRefused("encodings-missing", mentioning: ["\"layer_encodings\" is missing"]) }
    func testUnsupportedFormatVersion() { assertRefused("format-version-3", mentioning: ["format version 3", "1 to 2"]) }
}
