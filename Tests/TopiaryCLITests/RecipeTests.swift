import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import TopiaryCLI

/// Recipes: every mistake refused with the key's path, line and a suggestion; the shipped
/// recipes parse; the built-in study is recipes/default.yaml.
final class RecipeTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func refusal(_ yaml: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try Recipe(yaml: yaml, file: "r.yaml")
            XCTFail("accepted: \(yaml)", file: file, line: line)
            return ""
        } catch {
            return "\(error)"
        }
    }

    func testTheBuiltInStudyIsRecipesDefault() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("recipes/default.yaml"), encoding: .utf8)
        XCTAssertEqual(text, DefaultRecipe.text, "Sources/TopiaryCLI/DefaultRecipe.swift must hold recipes/default.yaml exactly")
    }

    func testShippedRecipesParse() throws {
        for name in ["default", "quick", "lenet-300-100-study"] {
            let r = try Recipe(contentsOfFile: Self.root.appendingPathComponent("recipes/\(name).yaml").path)
            XCTAssertFalse(r.methods.isEmpty)
        }
        let d = try Recipe(yaml: DefaultRecipe.text, file: "default.yaml")
        XCTAssertEqual(d.methods.map(\.name), ["global-geometric", "global-agp", "layerwise-geometric", "sensitivity-geometric", "neurons-l1"])
        XCTAssertEqual(d.methods[0].targets, [0.9, 0.95, 0.98])
        XCTAssertTrue(d.methods[0].milestones)
        XCTAssertFalse(d.methods[1].milestones, "agp: one run per target")
        XCTAssertEqual(d.methods[4].targets, [0.5])
        XCTAssertTrue(d.methods[4].structured)
        XCTAssertEqual(d.trainingArguments, ["--arch", "784-300-100-10", "--epochs", "15", "--batch-size", "128", "--optimizer", "sgd",
                                             "--lr", "0.05", "--momentum", "0.9", "--threads", "2"])
        XCTAssertEqual(d.threads, 2)
        XCTAssertEqual(d.benchBatches, [1, 128])
        let study = try Recipe(contentsOfFile: Self.root.appendingPathComponent("recipes/lenet-300-100-study.yaml").path)
        XCTAssertEqual(study.seeds, [0, 1, 2])
    }

    func testMisspeltKeysNameThePathLineAndSuggestion() {
        XCTAssertEqual(refusal("methods:\n  - scope: global\n  - scope: layerwise\n  - schedle: geometric\n"),
                       "r.yaml:4: methods[2].schedle: unknown key; did you mean \"schedule\"?")
        XCTAssertEqual(refusal("trainig:\n  epochs: 3\nmethods:\n  - scope: global\n"), "r.yaml:1: trainig: unknown key; did you mean \"training\"?")
        XCTAssertEqual(refusal("training:\n  epoch: 3\nmethods:\n  - scope: global\n"), "r.yaml:2: training.epoch: unknown key; did you mean \"epochs\"?")
        XCTAssertEqual(refusal("methods:\n  - --scope: global\n"), "r.yaml:2: methods[0].--scope: unknown key; write it without dashes: \"scope\"")
        XCTAssertEqual(refusal("methods:\n  - scope: globl\n"), "r.yaml:2: methods[0].scope: 'globl' is not one of global, layerwise, sensitivity; did you mean \"global\"?")
    }

    func testWrongTypesAndImpossibleValuesAreRefused() {
        XCTAssertEqual(refusal("methods:\n  - lr: abc\n"), "r.yaml:2: methods[0].lr: The value 'abc' is invalid for '--lr <lr>'")
        XCTAssertEqual(refusal("training:\n  epochs: [1, 2]\nmethods:\n  - scope: global\n"), "r.yaml:2: training.epochs: The value '1,2' is invalid for '--epochs <epochs>'")
        XCTAssertEqual(refusal("targets: [0.9, 1.5]\nmethods:\n  - scope: global\n"), "r.yaml:1: targets[1]: sparsity 1.5 is outside [0, 1] (a fraction: 0.9 is 90%)")
        XCTAssertEqual(refusal("methods:\n  - targets: [1.5]\n"), "r.yaml:2: methods[0].targets[0]: sparsity 1.5 is outside [0, 1] (a fraction: 0.9 is 90%)")
        XCTAssertEqual(refusal("methods:\n  - step-fraction: 7\n"), "r.yaml:2: methods[0].step-fraction: --step-fraction must be in [0.001, 1].")
        XCTAssertEqual(refusal("methods:\n  - prune-biases: maybe\n"), "r.yaml:2: methods[0].prune-biases: is a flag: expected true or false, got 'maybe'")
        XCTAssertEqual(refusal("methods:\n  - target: 0.9\n"), "r.yaml:2: methods[0].target: is set by 'targets' (the study's, or the method's own), not here")
        XCTAssertEqual(refusal("methods:\n  - scope: global\n  - scope: global\n"), "r.yaml:3: methods[1].name: 'magnitude-global-geometric' is also the name of methods[0]; give each method its own name")
        XCTAssertEqual(refusal("methods: []\n"), "r.yaml:1: methods: a recipe needs at least one method")
        XCTAssertEqual(refusal("seeds: [0, x]\nmethods:\n  - scope: global\n"), "r.yaml:1: seeds[1]: expected a seed (a whole number ≥ 0)")
        XCTAssertEqual(refusal("bench:\n  batch: [1, 0]\nmethods:\n  - scope: global\n"), "r.yaml:2: bench.batch: batch size 0 is outside 1...65536")
        XCTAssert(refusal("methods: [\n").hasPrefix("r.yaml: not valid YAML"))
        XCTAssertEqual(refusal("methods:\n  - structured: neurons\n    scope: sensitivity\n"),
                       "r.yaml:2: methods[0].structured: --structured neurons takes --scope layerwise (the default) or global.")
    }

    /// Issue 15's options are recipe keys of the same names, with no code of their own.
    func testSecondOrderOptionsAreRecipeKeys() throws {
        let r = try Recipe(yaml: """
            methods:
              - name: obs
                saliency: obs
                calibration-samples: 512
                damping: 0.05
                obs-budget: global
                schedule: oneshot
              - name: repaired
                structured: neurons
                criterion: l2
                repair: least-squares
                schedule: oneshot
                targets: [0.5]
            """, file: "r.yaml")
        XCTAssertEqual(r.methods[0].arguments, ["--saliency", "obs", "--calibration-samples", "512", "--damping", "0.05", "--obs-budget", "global", "--schedule", "oneshot"])
        XCTAssertEqual(r.methods[1].arguments, ["--structured", "neurons", "--criterion", "l2", "--repair", "least-squares", "--schedule", "oneshot"])
        XCTAssertEqual(refusal("methods:\n  - saliency: obs\n    prune-biases: true\n"),
                       "r.yaml:3: methods[0].prune-biases: --saliency obs prunes and reconstructs weights only; it cannot be combined with --prune-biases.")
        XCTAssertEqual(refusal("methods:\n  - repair: least-squares\n"), "r.yaml:2: methods[0].repair: --repair applies to --structured neurons.")
    }

    func testSVGTicksAreRoundAndCoverTheRange() {
        XCTAssertEqual(SVGChart.ticks(0...1), [0, 0.2, 0.4, 0.6, 0.8, 1])
        XCTAssertEqual(SVGChart.rounded(0.713...0.889), 0.7...0.9)
        let t = SVGChart.ticks(0.7...0.9)
        XCTAssertEqual(t.count, 5)
        XCTAssertEqual(t.first ?? 0, 0.7, accuracy: 1e-12)
        XCTAssertEqual(t.last ?? 0, 0.9, accuracy: 1e-12)
    }

    /// A chart is well-formed XML with its title, axis labels, legend entries, and one marker per point.
    func testSVGChartIsWellFormedWithTitleAxesAndLegend() throws {
        var c = SVGChart(title: "Accuracy <&> sparsity", xLabel: "weights removed", yLabel: "test accuracy (%)")
        c.xFormat = .percent
        c.series = [.init(name: "global", points: [.init(x: 0.9, y: 0.88), .init(x: 0.95, y: 0.87)]),
                    .init(name: "layerwise", points: [.init(x: 0.9, y: 0.86)])]
        c.horizontal = [.init(value: 0.885, label: "dense")]
        let svg = c.svg()
        let parser = XMLParser(data: Data(svg.utf8))
        final class Collect: NSObject, XMLParserDelegate {
            var elements: [String: Int] = [:]
            var text = ""
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
                elements[name, default: 0] += 1
            }
            func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }
        }
        let collect = Collect()
        parser.delegate = collect
        XCTAssertTrue(parser.parse(), "not well-formed: \(parser.parserError.map { "\($0)" } ?? "")")
        for s in ["Accuracy <&> sparsity", "weights removed", "test accuracy (%)", "global", "layerwise", "dense", "90%", "95%"] {
            XCTAssert(collect.text.contains(s), "missing text \(s): \(collect.text)")
        }
        XCTAssertEqual(collect.elements["circle"], 3 + 2, "three points and two legend markers")
        XCTAssertEqual(collect.elements["polyline"], 1, "a line for the series with two points")
    }
}
