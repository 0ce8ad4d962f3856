import Foundation
@_spi(Kernels) @_spi(Benchmarking) import Topiary

/// `results.json` of `topiary run` and `topiary report` (schema version 1; the DocC article
/// "The report of a study" documents every field).
///
/// Everything is a pure function of the recipe, its seeds and thread counts, except what lies
/// under a `timing` key and `environment`: those are measurements of this machine, and the only
/// fields in which two runs of one recipe (sharded or not, interrupted or not) may differ.
struct StudyResults: Codable, Equatable {
    static let schemaVersion = 1

    var schema_version = StudyResults.schemaVersion
    var study: StudyInfo
    var environment: Environment
    var dense: [DenseResult]
    var sensitivity: [SensitivityResult]
    var runs: [MethodRun]
    var results: [PrunedResult]
    var summary: [SummaryRow]
    var crossover: Crossover?
}

/// What was run.
struct StudyInfo: Codable, Equatable {
    var name: String
    var description: String?
    /// A hash of the recipe as parsed (FNV-1a, 64 bits): equal for equal studies.
    var recipe_hash: String
    var seeds: [UInt64]
    var threads: Int
    var methods: [MethodInfo]
    var bench_batches: [Int]
    var bench_threads: [Int]
}

struct MethodInfo: Codable, Equatable {
    var name: String
    /// `topiary prune` arguments (without model, output, seed and targets).
    var arguments: [String]
    var targets: [Double]
    var structured: Bool
}

/// The machine and libraries (measurements, like `timing`).
struct Environment: Codable, Equatable {
    var cpu: String
    var cores: Int
    var os: String
    var openblas: String
    var openblas_coretype: String?
    var sparse_kernels: String
    var date: String

    static func current() -> Environment {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let family = cpuinfo.split(separator: "\n").first { $0.hasPrefix("cpu family") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }.map { $0.trimmingCharacters(in: .whitespaces) }
        let modelNumber = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model\t") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }.map { $0.trimmingCharacters(in: .whitespaces) }
        let features = ["avx2", "fma", "avx512f"].filter { cpuinfo.contains(" \($0)") }
        var cpu = model
        if let family, let modelNumber { cpu += " (family \(family) model \(modelNumber))" }
        if !features.isEmpty { cpu += ", " + features.joined(separator: "+") }
        let formatter = ISO8601DateFormatter()
        return Environment(cpu: cpu, cores: ProcessInfo.processInfo.activeProcessorCount,
                           os: ProcessInfo.processInfo.operatingSystemVersionString,
                           openblas: BLAS.configuration, openblas_coretype: ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"],
                           sparse_kernels: SparseKernels.bestVariant.rawValue, date: formatter.string(from: Date()))
    }
}

/// A dense model of the study, one per seed.
struct DenseResult: Codable, Equatable {
    var seed: UInt64
    var architecture: String
    var parameters: Int
    var test_accuracy: Double
    var val_accuracy: Double?
    /// The model file, relative to the study folder.
    var model: String
    var file_bytes: Int
    /// The `topiary train` command that makes the same model.
    var command: String
    var epochs: [CurvePoint]
    var timing: Timing

    struct Timing: Codable, Equatable { var seconds: Double; var seconds_per_epoch: Double }
}

/// One point of a training or fine-tuning curve.
struct CurvePoint: Codable, Equatable {
    /// Epochs of training (or fine-tuning) done so far.
    var epoch: Int
    var sparsity: Double
    var train_loss: Double?
    var val_accuracy: Double?
    var test_accuracy: Double
}

/// A sensitivity analysis of one seed's dense model.
struct SensitivityResult: Codable, Equatable {
    var seed: UInt64
    var command: String
    var baseline_val_accuracy: Double
    var layers: [Layer]

    struct Layer: Codable, Equatable {
        var layer: Int
        var weights: Int
        var points: [Point]
    }

    struct Point: Codable, Equatable {
        var sparsity: Double
        var val_accuracy: Double
    }
}

/// One run of a method on one seed: one target, or all of them as milestones.
struct MethodRun: Codable, Equatable {
    var method: String
    var seed: UInt64
    var targets: [Double]
    /// The `topiary prune` command that makes the same models.
    var command: String
    var total_epochs: Int
    /// Accuracy after every pruning step, against the fine-tuning epochs so far.
    var curve: [CurvePoint]
    var timing: Timing

    struct Timing: Codable, Equatable { var seconds: Double }
}

/// A pruned model: one method, seed and target.
struct PrunedResult: Codable, Equatable {
    var method: String
    var seed: UInt64
    var structured: Bool
    /// The target: a fraction of weights, or of hidden neurons for a structured method.
    var target: Double
    /// The fraction of the dense model's weights that are gone (zero, or removed with their neuron).
    var weight_sparsity: Double
    var test_accuracy: Double
    var val_accuracy: Double?
    var dense_test_accuracy: Double
    var sizes: [Int]
    var parameters: Int
    var nonzero_parameters: Int
    var dense_parameters: Int
    /// Per layer, the fraction of the dense layer's weights that are gone.
    var layer_sparsity: [Double]
    /// Dense multiply-adds per sample over non-zero ones: the speedup if time followed the work.
    var flop_reduction: Double
    var model: String
    var file_bytes: Int
    var timing: Timing

    struct Timing: Codable, Equatable { var bench: [BenchPoint] }
}

/// Inference speed of one model at one batch size and thread count.
struct BenchPoint: Codable, Equatable {
    var batch: Int
    var threads: Int
    /// The model run dense-masked: its weights with zeros through `sgemm`.
    var masked_samples_per_s: Double
    /// The model compiled with the automatic policy (CSR where it wins).
    var compressed_samples_per_s: Double
    /// The dense (unpruned) model, dense, at the same batch and threads.
    var dense_samples_per_s: Double
    /// Latency per sample of the compressed model.
    var us_per_sample: Double
    /// compressed / dense model: what pruning bought.
    var speedup: Double
    /// compressed / masked: what compression bought on this model.
    var speedup_over_masked: Double
    /// The automatic plan's choice per layer.
    var layers: [String]
}

/// Mean and spread over seeds of one method at one target.
struct SummaryRow: Codable, Equatable {
    var method: String
    var target: Double
    var seeds: Int
    var weight_sparsity: Double
    var test_accuracy_mean: Double
    var test_accuracy_std: Double
    var dense_test_accuracy_mean: Double
    var nonzero_parameters: Int
    var file_bytes: Int
    var flop_reduction: Double
}

/// The dense model of the first seed pruned by one-shot global magnitude to each sparsity and
/// benchmarked: where compressed inference starts to beat dense-masked.
struct Crossover: Codable, Equatable {
    var seed: UInt64
    var sparsities: [Double]
    var timing: Timing

    struct Timing: Codable, Equatable {
        var points: [Point]
        /// Per batch and threads, the sparsity where compressed starts to win (interpolated), or
        /// `null` when it never does within the sweep.
        var crossovers: [Cross]
    }

    struct Point: Codable, Equatable {
        var sparsity: Double
        var batch: Int
        var threads: Int
        var masked_samples_per_s: Double
        /// Every layer CSR (not the automatic plan, which keeps dense layers where they win).
        var csr_samples_per_s: Double
        var speedup: Double
    }

    struct Cross: Codable, Equatable {
        var batch: Int
        var threads: Int
        var sparsity: Double?
    }

    /// The first sparsity where the speedup reaches 1, interpolated linearly from the point below.
    static func crossovers(_ points: [Point]) -> [Cross] {
        var out: [Cross] = []
        let keys = points.map { [$0.batch, $0.threads] }.reduce(into: [[Int]]()) { if !$0.contains($1) { $0.append($1) } }
        for key in keys {
            let line = points.filter { [$0.batch, $0.threads] == key }.sorted { $0.sparsity < $1.sparsity }
            var at: Double?
            if let first = line.first, first.speedup >= 1 {
                at = first.sparsity
            } else {
                for (a, b) in zip(line, line.dropFirst()) where a.speedup < 1 && b.speedup >= 1 {
                    at = a.sparsity + (1 - a.speedup) / (b.speedup - a.speedup) * (b.sparsity - a.sparsity)
                    break
                }
            }
            out.append(Cross(batch: key[0], threads: key[1], sparsity: at))
        }
        return out
    }
}

extension StudyResults {
    /// The JSON text: sorted keys, pretty, non-finite numbers as strings.
    func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(self)
    }
}
