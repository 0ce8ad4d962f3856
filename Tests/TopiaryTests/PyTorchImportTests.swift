import Foundation
import XCTest
@_spi(Files) @testable import Topiary

/// The order of a state dict's layers when their names do not give it: the shapes decide.
final class PyTorchImportTests: XCTestCase {
    func testShapesOrderLayersWhoseNamesDoNotChain() throws {
        // Named b, c, a but chaining a (3 => 5), then c (5 => 4), then b (4 => 2).
        var file = SafeTensors()
        for (name, out, input) in [("b", 2, 4), ("c", 4, 5), ("a", 5, 3)] {
            file.tensors["\(name).weight"] = .init(float32: (0..<(out * input)).map { Float($0) / 8 }, shape: [out, input])
            file.tensors["\(name).bias"] = .init(float32: (0..<out).map { Float($0) }, shape: [out])
        }
        let model = try PyTorch.importModel(file, path: "sd")
        XCTAssertEqual(model.network.sizes, [3, 5, 4, 2])
        XCTAssertEqual(model.metadata["imported_layers"], "a,c,b")
        XCTAssertEqual(model.network.layers[1].weight.storage, (0..<20).map { Float($0) / 8 })
        XCTAssertEqual(model.network.layers[2].bias, [0, 1])
    }

    func testThousandsOfLayersAreOrderedOrRefusedQuickly() throws {
        // Searching every layer for every layer's input took quadratic time: 12,000 layers (a
        // 1 MB file) took 95 s to be refused in the ASan debug build, and a state dict of 100,000
        // would hang; with the widths looked up it takes 2.5 s there.
        var ambiguous = SafeTensors()
        for i in 0..<12_000 { ambiguous.tensors["l\(i).weight"] = .init(float32: [0.5, 0.25], shape: [2, 1]) }
        let start = Date()
        let error = assertThrowsTopiaryError(.invalidShape, try PyTorch.importModel(ambiguous, path: "sd"))
        XCTAssertTrue(error?.message.contains("their shapes do not decide an order") ?? false, error?.message ?? "")
        XCTAssertLessThan(Date().timeIntervalSince(start), 20, "12,000 layers must not take quadratic time")

        // A long chain the shapes decide alone: widths 1, 2, …, 61, named in reverse.
        var chain = SafeTensors()
        for i in 1...60 { chain.tensors["layer\(61 - i).weight"] = .init(float32: [Float](repeating: 0.5, count: i * (i + 1)), shape: [i + 1, i]) }
        let model = try PyTorch.importModel(chain, path: "sd")
        XCTAssertEqual(model.network.sizes, Array(1...61))
    }
}
