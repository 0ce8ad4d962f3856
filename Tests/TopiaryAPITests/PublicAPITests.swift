import Foundation
import XCTest
import Topiary   // not @testable: this target sees what a user of the package sees

/// Compiles code against the built `Topiary` module as a client package would, with `swiftc -typecheck`.
enum ClientCompiler {
    /// The folder of the built products (the test bundle's folder).
    static var products: URL {
        if let bundle = Bundle.allBundles.first(where: { $0.bundlePath.hasSuffix(".xctest") }) {
            return bundle.bundleURL.deletingLastPathComponent()
        }
        return Bundle.main.bundleURL   // Linux: the folder of the test executable
    }

    /// Type-checks `source`; returns the compiler's exit status and its diagnostics.
    static func typecheck(_ source: String) throws -> (status: Int32, diagnostics: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("topiary-client-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("client.swift")
        try source.write(to: file, atomically: true, encoding: .utf8)
        let root = Snippets.root
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["swiftc", "-typecheck", "-parse-as-library", "-swift-version", "5",
                             "-I", products.appendingPathComponent("Modules").path,
                             "-I", root.appendingPathComponent("CBLAS").path,
                             "-I", root.appendingPathComponent("Sources/CZlib").path,
                             "-Xcc", "-fmodule-map-file=" + products.appendingPathComponent("CSparseKernels.build/module.modulemap").path,
                             file.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// Skips the calling test when the built module is not where `swift build` puts it.
    static func requireModule() throws {
        let module = products.appendingPathComponent("Modules/Topiary.swiftmodule")
        guard FileManager.default.fileExists(atPath: module.path) else {
            throw XCTSkip("no built Topiary module at \(module.path)")
        }
    }
}

final class PublicAPITests: XCTestCase {
    /// The mask invariant `weight == weight ⊙ mask` cannot be broken from outside the library:
    /// every way to write a layer's parameters or a network's layers directly fails to compile.
    func testParametersCannotBeWrittenAroundTheMask() throws {
        try ClientCompiler.requireModule()
        let attempts = [
            "layer.weight.storage[0] = 5",
            "layer.weight = Matrix(rows: 2, columns: 3)",
            "layer.weight[0, 0] = 1",
            "layer.bias[0] = 1",
            "layer.bias = [0, 0]",
            "net.layers[0] = layer",
            "net.layers = []",
        ]
        for attempt in attempts {
            let source = """
                import Topiary
                func attempt() throws {
                    let layer = try Dense(3 => 2, seed: 0)
                    let net = try Chain(layer)
                    \(attempt)
                    _ = net
                }
                """
            let (status, diagnostics) = try ClientCompiler.typecheck(source)
            XCTAssertNotEqual(status, 0, "\(attempt) compiled")
            XCTAssert(diagnostics.contains("inaccessible"), "\(attempt): \(diagnostics)")
        }
        // The control: the same program with a legal change compiles.
        let (status, diagnostics) = try ClientCompiler.typecheck("""
            import Topiary
            func attempt() throws {
                let layer = try Dense(3 => 2, seed: 0)
                try layer.setParameters(weight: Matrix(rows: 2, columns: 3, repeating: 1))
                try layer.prune(indices: [0])
                _ = try Chain(layer)
            }
            """)
        XCTAssertEqual(status, 0, diagnostics)
    }

    /// The invariant holds through every public way of changing a layer.
    func testEveryPublicWriteKeepsPrunedWeightsAtZero() throws {
        let layer = try Dense(4 => 3, .relu, seed: 1)
        try layer.prune(indices: [0, 5, 11])
        func check(_ what: String) {
            for i in [0, 5, 11] { XCTAssertEqual(layer.weight.storage[i].bitPattern, 0, "\(what): weight \(i)") }
        }
        check("prune")
        try layer.setParameters(weight: Matrix(rows: 3, columns: 4, repeating: 2), bias: [1, 1, 1])
        check("setParameters")
        try layer.setMask(Matrix([[0, 1, 1, 1], [1, 0, 1, 1], [1, 1, 1, 0]]))
        XCTAssertEqual(layer.weight.storage[0], 0)
        XCTAssertEqual(layer.weight.storage[5], 0)
        XCTAssertEqual(layer.weight.storage[11], 0)
        let net = try Chain(layer)
        let data = try LabeledData(images: Matrix(rows: 8, columns: 4, repeating: 0.5), labels: [0, 1, 2, 0, 1, 2, 0, 1])
        let trainer = try Trainer(network: net, optimizer: SGD(learningRate: 0.5, momentum: 0.9, weightDecay: 0.1), batchSize: 4, seed: 0)
        for _ in 0..<3 { try trainer.trainEpoch(data) }
        check("training")
    }

    /// Size mistakes throw errors whose message names the layer and the sizes.
    func testShapeMistakesNameTheLayerAndTheSizes() throws {
        XCTAssertThrowsError(try Chain(Dense(784 => 300, .relu, seed: 1), Dense(100 => 10, seed: 2))) { error in
            XCTAssertEqual(error.localizedDescription,
                           "Chain: layer 1 Dense(100 => 10) expects 100 inputs, but layer 0 Dense(784 => 300) gives 300")
        }
        XCTAssertThrowsError(try Chain(sizes: [784], seed: 0)) { error in
            XCTAssertEqual((error as? TopiaryError)?.kind, .invalidShape)
        }
        let net = try Chain(sizes: [6, 4, 2], seed: 0)
        XCTAssertThrowsError(try net.predict(Matrix(rows: 3, columns: 5))) { error in
            XCTAssertEqual(error.localizedDescription, "Chain: layer 0 Dense(6 => 4) expects input with 6 columns, got 3×5")
        }
        let data = try LabeledData(images: Matrix(rows: 2, columns: 5), labels: [0, 1])
        XCTAssertThrowsError(try Trainer(network: net, optimizer: SGD(), batchSize: 2, seed: 0).trainEpoch(data)) { error in
            XCTAssertTrue(error.localizedDescription.contains("5"), error.localizedDescription)
        }
    }

    /// Every error's `localizedDescription` is its message (Foundation's default would be
    /// "The operation could not be completed").
    func testLocalizedDescriptionIsTheMessage() {
        let kinds: [TopiaryError.Kind] = [.fileNotFound, .corruptFile, .invalidShape, .invalidOption, .nonFinite, .writeFailed]
        for kind in kinds {
            let error: Error = TopiaryError(kind, "message of \(kind)")
            XCTAssertEqual(error.localizedDescription, "message of \(kind)")
        }
    }

    func testNetworksAndLayersDescribeThemselves() throws {
        let net = try Chain(sizes: [4, 3, 2], seed: 0)
        try net.layers[0].prune(indices: [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(net.layers[0].description, "Dense(4 => 3, relu, 50.0% sparse)")
        XCTAssertEqual(net.layers[1].description, "Dense(3 => 2)")
        XCTAssertEqual(net.description, """
            Chain(4-3-2, 23 parameters, 33.3% sparse)
              0        4 => 3      relu         15 params   50.0% sparse
              1        3 => 2  identity          8 params    0.0% sparse
            """)
    }

    /// Every Swift code block of the README, the DocC articles and the DocC comments compiles
    /// against the public API.
    func testEveryDocumentedSnippetCompiles() throws {
        try ClientCompiler.requireModule()
        let blocks = try Snippets.all()
        XCTAssertGreaterThan(blocks.count, 30)
        let program = Snippets.program(blocks, prelude: snippetPrelude)
        let (status, diagnostics) = try ClientCompiler.typecheck(program)
        guard status != 0 else { return }
        // Name each error by the snippet's origin (the comment before its code in the program).
        let lines = program.components(separatedBy: "\n")
        var failures: [String] = []
        for line in diagnostics.components(separatedBy: "\n") where line.contains("client.swift:") && line.contains(": error:") {
            let parts = line.components(separatedBy: "client.swift:")[1].split(separator: ":")
            guard let n = Int(parts[0]), n <= lines.count else { continue }
            let origin = lines[..<n].last { $0.hasPrefix("// ") }?.dropFirst(3) ?? "prelude"
            failures.append("\(origin): \(line.components(separatedBy: ": error: ").last ?? line) — \(lines[n - 1].trimmingCharacters(in: .whitespaces))")
        }
        XCTFail("snippets that do not compile:\n" + failures.joined(separator: "\n"))
    }
}

/// The names the documented snippets assume (each snippet may shadow them).
let snippetPrelude = """
    import Topiary
    import Foundation
    let net = try! Chain(sizes: [784, 300, 100, 10], seed: 0)
    let network = net
    let layer = net.layers[0]
    let data = try! Dataset(train: LabeledData(featureCount: 784), validation: LabeledData(featureCount: 784),
                       test: LabeledData(featureCount: 784), normalization: .identity, classCount: 10)
    let images = Matrix(rows: 1, columns: 784)
    let x = images
    let model = Model(network: net)
    var rng = SeededRandom(seed: 0)
    let dataset = data
    let initialNetwork = net
    let snapshot = WeightSnapshot(net, epoch: 0)
    let pruner = Pruner()
    let trainer = try! Trainer(network: net, optimizer: SGD())
    let prunedLayer = layer
    """
