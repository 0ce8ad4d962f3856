import Foundation
@_spi(Kernels) @_spi(Benchmarking) @_spi(Files) import Topiary

/// The report of a study: `results.json`, `report.md` and the plots, from its results.
struct StudyReport {
    let results: StudyResults
    let study: Study

    /// The plots, by file name under `plots/`.
    var plots: [(name: String, chart: SVGChart)] {
        var out: [(String, SVGChart)] = [("accuracy.svg", accuracyChart()), ("layers.svg", layersChart()), ("training.svg", trainingChart())]
        if let c = speedupChart() { out.insert(("speedup.svg", c), at: 1) }
        if let c = sensitivityChart() { out.append(("sensitivity.svg", c)) }
        return out
    }

    func write(to folder: String) throws {
        try writeFileAtomically(Array(try results.json()) + [10], to: folder + "/results.json")
        for (name, chart) in plots { try writeFileAtomically(Array(chart.svg().utf8), to: folder + "/plots/" + name) }
        try writeFileAtomically(Array(markdown().utf8), to: folder + "/report.md")
    }

    // MARK: Tables

    /// Mean speedup over seeds of `method` at `target`, at `batch` with the first thread count.
    static func speedup(_ results: StudyResults, method: String, target: Double, batch: Int) -> Double? {
        let values = results.results.filter { $0.method == method && $0.target == target }
            .compactMap { $0.timing.bench.first { $0.batch == batch }?.speedup }
        return values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }

    /// The headline table (plain text), as `topiary run` prints it.
    static func headline(_ results: StudyResults) -> String {
        let batches = results.study.bench_batches
        let dense = results.dense.map(\.test_accuracy).reduce(0, +) / Double(max(1, results.dense.count))
        var rows = [["method", "target", "removed", "test acc", "Δ dense", "non-zero", "file KB"] + batches.map { "speedup B=\($0)" }]
        for r in results.summary {
            rows.append([r.method, percent(r.target), percent(r.weight_sparsity),
                         percent(r.test_accuracy_mean) + (r.seeds > 1 ? String(format: " ±%.2f", 100 * r.test_accuracy_std) : ""),
                         String(format: "%+.2f", 100 * (r.test_accuracy_mean - r.dense_test_accuracy_mean)),
                         "\(r.nonzero_parameters)", String(format: "%.0f", Double(r.file_bytes) / 1000)]
                        + batches.map { b in speedup(results, method: r.method, target: r.target, batch: b).map { String(format: "%.2f", $0) } ?? "-" })
        }
        let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        let lines = rows.map { row in row.enumerated().map { c, v in c == 0 ? v.padding(toLength: widths[c], withPad: " ", startingAt: 0) : String(repeating: " ", count: widths[c] - v.count) + v }.joined(separator: "  ") }
        return "dense test accuracy \(percent(dense)) (\(results.dense.first?.architecture ?? "")); speedup = compressed model / dense model, \(results.study.bench_threads.first ?? 1) thread(s)\n"
            + lines.joined(separator: "\n")
    }

    private func table(_ header: [String], _ rows: [[String]]) -> String {
        var s = "| " + header.joined(separator: " | ") + " |\n|" + header.map { _ in "---|" }.joined() + "\n"
        for r in rows { s += "| " + r.joined(separator: " | ") + " |\n" }
        return s
    }

    private func layerName(_ i: Int) -> String {
        guard let sizes = results.results.first?.sizes ?? results.dense.first.map({ $0.architecture.split(separator: "-").compactMap { Int($0) } }),
              i + 1 < sizes.count else { return "layer \(i)" }
        let dense = results.dense.first.map { $0.architecture.split(separator: "-").compactMap { Int($0) } } ?? sizes
        return "layer \(i) (\(dense[i])→\(dense[i + 1]))"
    }

    func markdown() -> String {
        let r = results, e = r.environment
        let batches = r.study.bench_batches
        var s = "# Study `\(r.study.name)`\n\n"
        if let d = r.study.description { s += d + "\n\n" }
        s += "Machine: \(e.cpu), \(e.cores) cores; \(e.os). OpenBLAS: \(e.openblas)\(e.openblas_coretype.map { ", OPENBLAS_CORETYPE=\($0)" } ?? ""); "
        s += "sparse kernels: \(e.sparse_kernels). Report written \(e.date). Seeds \(r.study.seeds.map(String.init).joined(separator: ", ")); "
        s += "\(r.study.threads) thread(s) for training; benchmarks at batch \(batches.map(String.init).joined(separator: ", ")) on \(r.study.bench_threads.map(String.init).joined(separator: ", ")) thread(s). Recipe hash `\(r.study.recipe_hash)`.\n\n"

        s += "## Accuracy, size and speed\n\n"
        s += "Mean over seeds (± standard deviation with several). *Removed*: the fraction of the dense model's weights that are gone. "
        s += "*Speedup*: the compressed model (CSR where it wins) against the dense model, both compiled, at each batch size; "
        s += "*FLOP reduction*: the speedup if time followed the multiply-adds.\n\n"
        let dense = r.dense.map(\.test_accuracy).reduce(0, +) / Double(max(1, r.dense.count))
        s += table(["method", "target", "removed", "test accuracy", "Δ vs dense", "non-zero parameters", "file bytes", "FLOP reduction"] + batches.map { "speedup B=\($0)" },
                   [["dense", "–", "0%", percent(dense), "–", "\(r.dense.first?.parameters ?? 0)", "\(r.dense.first?.file_bytes ?? 0)", "1.00×"] + batches.map { _ in "1.00×" }]
                   + r.summary.map { row in
                       [row.method, percent(row.target), percent(row.weight_sparsity),
                        percent(row.test_accuracy_mean) + (row.seeds > 1 ? String(format: " ± %.2f", 100 * row.test_accuracy_std) : ""),
                        String(format: "%+.2f", 100 * (row.test_accuracy_mean - row.dense_test_accuracy_mean)),
                        "\(row.nonzero_parameters)", "\(row.file_bytes)", String(format: "%.2f×", row.flop_reduction)]
                       + batches.map { b in StudyReport.speedup(r, method: row.method, target: row.target, batch: b).map { String(format: "%.2f×", $0) } ?? "–" }
                   })
        s += "\n![Test accuracy against sparsity](plots/accuracy.svg)\n\n"

        s += "## Dense model\(r.dense.count > 1 ? "s" : "")\n\n"
        s += table(["seed", "architecture", "parameters", "test accuracy", "validation accuracy", "epochs", "s/epoch"],
                   r.dense.map { ["\($0.seed)", $0.architecture, "\($0.parameters)", percent($0.test_accuracy), percentOrNotApplicable($0.val_accuracy),
                                  "\($0.epochs.count)", String(format: "%.2f", $0.timing.seconds_per_epoch)] })

        s += "\n## Every pruned model\n\n"
        s += table(["method", "seed", "target", "removed", "test", "validation", "sizes", "non-zero", "file bytes"] + (0..<(r.results.first?.layer_sparsity.count ?? 0)).map { layerName($0) },
                   r.results.map { x in
                       [x.method, "\(x.seed)", percent(x.target), percent(x.weight_sparsity), percent(x.test_accuracy), percentOrNotApplicable(x.val_accuracy),
                        x.sizes.map(String.init).joined(separator: "-"), "\(x.nonzero_parameters)", "\(x.file_bytes)"] + x.layer_sparsity.map { percent($0) }
                   })
        s += "\n![Per-layer sparsity](plots/layers.svg)\n\n"

        s += "## Inference speed\n\nSamples per second: *masked* is the pruned model through dense `sgemm` (weights with zeros), *compressed* the same model compiled with the automatic policy (the plan lists each layer's choice), *dense* the unpruned model.\n\n"
        var rows: [[String]] = []
        for x in r.results {
            for b in x.timing.bench {
                rows.append([x.method, "\(x.seed)", percent(x.target), "\(b.batch)", "\(b.threads)", String(format: "%.0f", b.dense_samples_per_s),
                             String(format: "%.0f", b.masked_samples_per_s), String(format: "%.0f", b.compressed_samples_per_s),
                             String(format: "%.3f", b.us_per_sample), String(format: "%.2f×", b.speedup), String(format: "%.2f×", b.speedup_over_masked),
                             b.layers.joined(separator: ",")])
            }
        }
        s += table(["method", "seed", "target", "batch", "threads", "dense/s", "masked/s", "compressed/s", "µs/sample", "speedup", "over masked", "plan"], rows)
        if let c = r.crossover {
            s += "\n### Crossover\n\nThe seed-\(c.seed) dense model pruned by one-shot global magnitude to each sparsity, every layer CSR against dense-masked (speedup > 1: CSR wins):\n\n"
            let keys = c.timing.crossovers
            s += table(["sparsity"] + keys.map { "B=\($0.batch), \($0.threads) thread(s)" },
                       c.sparsities.map { sp in [percent(sp)] + keys.map { k in
                           c.timing.points.first { $0.sparsity == sp && $0.batch == k.batch && $0.threads == k.threads }.map { String(format: "%.2f×", $0.speedup) } ?? "–"
                       } })
            s += "\nCompressed inference starts to win at: " + keys.map { "batch \($0.batch) (\($0.threads) thread(s)) \($0.sparsity.map { percent($0) } ?? "never in the sweep")" }.joined(separator: "; ") + ".\n"
            s += "\n![Speedup against sparsity](plots/speedup.svg)\n"
        }

        if !r.sensitivity.isEmpty {
            s += "\n## Sensitivity\n\nValidation accuracy with one layer pruned alone (seed \(r.sensitivity[0].seed), unpruned \(percent(r.sensitivity[0].baseline_val_accuracy))):\n\n"
            let first = r.sensitivity[0]
            s += table(["sparsity"] + first.layers.map { layerName($0.layer) },
                       (first.layers.first?.points ?? []).indices.map { i in [percent(first.layers[0].points[i].sparsity)] + first.layers.map { percent($0.points[i].val_accuracy) } })
            s += "\n![Sensitivity](plots/sensitivity.svg)\n"
        }

        s += "\n## Training and fine-tuning\n\n![Test accuracy during training and pruning](plots/training.svg)\n\n"
        s += table(["method", "seed", "targets", "epochs", "seconds"],
                   r.runs.map { [$0.method, "\($0.seed)", $0.targets.map { percent($0) }.joined(separator: ", "), "\($0.total_epochs)", String(format: "%.1f", $0.timing.seconds)] })

        s += "\n## Reproduce\n\nFrom the study folder, each step is one command (the same code runs in `topiary run`):\n\n```sh\n"
        for d in r.dense { s += d.command + "\n" }
        for x in r.sensitivity { s += x.command + "\n" }
        for x in r.runs { s += x.command + "\n" }
        s += "```\n\n`results.json` holds every number above (schema version \(r.schema_version)); fields under `timing` and `environment` are measurements of this machine, the rest depends only on the recipe, seeds and thread counts.\n"
        return s
    }

    // MARK: Plots

    private func methodMeans() -> [(String, [SVGChart.Point])] {
        results.study.methods.map { m in
            (m.name, results.summary.filter { $0.method == m.name }.map { SVGChart.Point(x: $0.weight_sparsity, y: $0.test_accuracy_mean) }.sorted { $0.x < $1.x })
        }
    }

    func accuracyChart() -> SVGChart {
        var c = SVGChart(title: "Test accuracy against sparsity", xLabel: "weights removed (% of the dense model's)", yLabel: "test accuracy (%)")
        c.xFormat = .percent
        c.yFormat = .percent
        c.series = methodMeans().map { SVGChart.Series(name: $0.0, points: $0.1) }
        let dense = results.dense.map(\.test_accuracy).reduce(0, +) / Double(max(1, results.dense.count))
        c.horizontal = [.init(value: dense, label: "dense \(percent(dense))")]
        return c
    }

    func speedupChart() -> SVGChart? {
        guard let cross = results.crossover else { return nil }
        var c = SVGChart(title: "CSR against dense-masked inference", xLabel: "weights removed (one-shot global magnitude)", yLabel: "speedup (×, dense-masked = 1)")
        c.xFormat = .percent
        for k in cross.timing.crossovers {
            let line = cross.timing.points.filter { $0.batch == k.batch && $0.threads == k.threads }.sorted { $0.sparsity < $1.sparsity }
            c.series.append(.init(name: "batch \(k.batch), \(k.threads) thread\(k.threads > 1 ? "s" : "")", points: line.map { .init(x: $0.sparsity, y: $0.speedup) }))
            if let at = k.sparsity { c.vertical.append(.init(value: at, label: "B=\(k.batch): \(String(format: "%.0f%%", 100 * at))")) }
        }
        c.horizontal = [.init(value: 1, label: "break-even")]
        return c
    }

    func layersChart() -> SVGChart {
        // Each method at its highest target, first seed.
        let picks = results.study.methods.compactMap { m -> PrunedResult? in
            results.results.filter { $0.method == m.name && $0.seed == results.study.seeds.first }.max { $0.target < $1.target }
        }
        var c = SVGChart(title: "Sparsity per layer (each method at its highest target)", xLabel: "method", yLabel: "weights removed (%)")
        c.style = .bars(groups: picks.map { "\($0.method) \(String(format: "%.0f%%", 100 * $0.target))" })
        c.yFormat = .percent
        c.yRange = 0...1
        let layers = picks.map(\.layer_sparsity.count).max() ?? 0
        c.series = (0..<layers).map { l in
            .init(name: layerName(l), points: picks.enumerated().compactMap { i, p in l < p.layer_sparsity.count ? .init(x: Double(i), y: p.layer_sparsity[l]) : nil })
        }
        return c
    }

    func sensitivityChart() -> SVGChart? {
        guard let first = results.sensitivity.first else { return nil }
        var c = SVGChart(title: "Sensitivity: one layer pruned alone (seed \(first.seed))", xLabel: "sparsity of the layer", yLabel: "validation accuracy (%)")
        c.xFormat = .percent
        c.yFormat = .percent
        c.series = first.layers.map { .init(name: layerName($0.layer), points: $0.points.map { .init(x: $0.sparsity, y: $0.val_accuracy) }) }
        c.horizontal = [.init(value: first.baseline_val_accuracy, label: "unpruned \(percent(first.baseline_val_accuracy))")]
        return c
    }

    func trainingChart() -> SVGChart {
        var c = SVGChart(title: "Test accuracy during training and pruning (seed \(results.study.seeds.first ?? 0))", xLabel: "epochs", yLabel: "test accuracy (%)")
        c.yFormat = .percent
        guard let dense = results.dense.first else { return c }
        let start = Double(dense.epochs.count)
        c.series = [.init(name: "dense training", points: dense.epochs.map { .init(x: Double($0.epoch), y: $0.test_accuracy) }, color: "#555555")]
        for (i, m) in results.study.methods.enumerated() {
            let runs = results.runs.filter { $0.method == m.name && $0.seed == dense.seed }
            guard let run = runs.max(by: { ($0.targets.max() ?? 0) < ($1.targets.max() ?? 0) }) else { continue }
            c.series.append(.init(name: m.name, points: run.curve.map { .init(x: start + Double($0.epoch), y: $0.test_accuracy) }, markers: run.curve.count < 40,
                                  color: SVGChart.palette[i % SVGChart.palette.count]))
        }
        let ys = c.series.flatMap(\.points).map(\.y)
        if let lo = ys.min(), let hi = ys.max() { c.yRange = SVGChart.rounded(max(0, lo)...min(1, hi)) }
        return c
    }
}
