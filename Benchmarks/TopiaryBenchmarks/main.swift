// The benchmark harness: dense-masked versus CSR per layer shape, whole-network throughput, and
// the regression check against Benchmarks/baseline.json. A client of Topiary's public API only.
//
//   swift run -c release TopiaryBenchmarks --quick                      # quick grid, table
//   swift run -c release TopiaryBenchmarks --shape 4096x4096 --batch 1,128 --sparsity 0.9,0.95 --threads 1,2
//   swift run -c release TopiaryBenchmarks --quick --write-baseline Benchmarks/baseline.json
//   swift run -c release TopiaryBenchmarks --check Benchmarks/baseline.json [--tolerance 0.5]
//   swift run -c release TopiaryBenchmarks --network                    # LeNet-300-100 at 0/90/95/98%
import Foundation
import Topiary

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(2)
}

func list<T>(_ text: String, _ parse: (String) -> T?) -> [T] {
    text.split(separator: ",").map { item in
        guard let v = parse(String(item)) else { fail("cannot read \"\(item)\" in \"\(text)\"") }
        return v
    }
}

var configuration = SparseBenchmark.Configuration.full
var json = false, runNetwork = false
var baselineOut: String?, checkPath: String?, tolerance: Double?
var args = CommandLine.arguments.dropFirst()
func value(_ flag: String) -> String {
    guard let v = args.popFirst() else { fail("\(flag) needs a value") }
    return v
}
var overrides: [(inout SparseBenchmark.Configuration) -> Void] = []
while let flag = args.popFirst() {
    switch flag {
    case "--quick": configuration = .quick
    case "--shape":
        let v = list(value(flag)) { try? SparseBenchmark.Shape(parsing: $0) }
        overrides.append { $0.shapes = v }
    case "--batch":
        let v = list(value(flag)) { Int($0) }
        overrides.append { $0.batches = v }
    case "--sparsity":
        let v = list(value(flag)) { Double($0) }
        overrides.append { $0.sparsities = v }
    case "--threads":
        let v = list(value(flag)) { Int($0) }
        overrides.append { $0.threads = v }
    case "--runs":
        let v = Int(value(flag)) ?? 0
        overrides.append { $0.runs = v }
    case "--json": json = true
    case "--network": runNetwork = true
    case "--write-baseline": baselineOut = value(flag)
    case "--check": checkPath = value(flag)
    case "--tolerance": tolerance = Double(value(flag))
    default: fail("unknown option \(flag)")
    }
}
for o in overrides { o(&configuration) }

let encoder = JSONEncoder()
encoder.outputFormatting = [.prettyPrinted, .sortedKeys]

if runNetwork {
    let results = SparseBenchmark.lenet()
    if json {
        print(String(decoding: try encoder.encode(results), as: UTF8.self))
    } else {
        print("LeNet-300-100, random masks, kernel variant \(SparseKernels.bestVariant)")
        print(SparseBenchmark.table(results))
    }
    exit(0)
}

if let checkPath {
    let baseline: SparseBenchmark.Baseline
    do { baseline = try SparseBenchmark.Baseline(contentsOfFile: checkPath) } catch { fail("\(error)") }
    let (results, regressions) = SparseBenchmark.check(baseline: baseline, tolerance: tolerance)
    print(results.table)
    if regressions.isEmpty {
        print("\nno regression beyond \(Int(((tolerance ?? baseline.tolerance) * 100).rounded()))% of the baseline ratios (\(results.results.count) cells)")
        exit(0)
    }
    print("\nregressions:")
    for r in regressions { print("  \(r)") }
    exit(1)
}

do { try configuration.validate() } catch { fail("\(error)") }
let results = SparseBenchmark.run(configuration) { cell in
    if !json {
        FileHandle.standardError.write(Data("\(cell.shape) B=\(cell.batch) T=\(cell.threads) s=\(cell.sparsity): \(cell.speedup)x\n".utf8))
    }
}
if json {
    print(String(decoding: try encoder.encode(results), as: UTF8.self))
} else {
    print("kernel variant \(results.variant)")
    print(results.table)
}
if let baselineOut {
    let text = try SparseBenchmark.Baseline(results).jsonString()
    do { try (text + "\n").write(toFile: baselineOut, atomically: true, encoding: .utf8) } catch { fail("cannot write \(baselineOut): \(error)") }
    FileHandle.standardError.write(Data("wrote \(baselineOut)\n".utf8))
}
let stats = SparseKernels.poolStatistics
FileHandle.standardError.write(Data("thread pool: \(stats.jobs) jobs, chunks run by workers \(stats.workerChunks), by callers \(stats.callerChunks), \(stats.sleeps) sleeps\n".utf8))
