import Foundation
@_spi(Kernels) import Topiary

/// The CLI's start: when OpenBLAS runs a generic core on a CPU with wider vectors, restart once
/// with `OPENBLAS_CORETYPE` set to the core that suits it (OpenBLAS reads the variable when it
/// loads, so only a new process can change the core), unless the user set the variable.
///
/// The restarted process carries ``marker`` (`FROM>TO`), which stops a second restart; it checks
/// that the core took and says so in one line on standard error (standard output stays clean for
/// `--json`).
enum BLASCoreSelection {
    /// Set on the restarted process: `FROM>TO`, the generic core and the one asked for.
    static let marker = "TOPIARY_OPENBLAS_RESTARTED"
    /// For tests only: the core to take as the running one when deciding (e.g. `Prescott`),
    /// so that the restart can be tested on a machine where OpenBLAS picks a good core.
    static let assumedCoreForTests = "TOPIARY_TEST_ASSUME_OPENBLAS_CORE"
    /// The generic core this process was restarted from, when it was (set once, at start).
    nonisolated(unsafe) private(set) static var restartedFrom: String?

    /// What the process does about its core.
    enum Action: Equatable {
        /// Nothing: the core stands, or the user chose it.
        case none
        /// Restart with `OPENBLAS_CORETYPE=core`, from the generic core `from`.
        case restart(core: String, from: String)
        /// This is the restarted process: print `line` on standard error.
        case report(String)
    }

    /// The decision, from the environment and what OpenBLAS reports (no side effects).
    ///
    /// - Parameters:
    ///   - environment: the process's environment.
    ///   - running: the core OpenBLAS runs (``BLAS/coreName``).
    ///   - cpu: the CPU's features.
    ///   - supported: the cores the library carries kernels for.
    static func decide(environment: [String: String], running: String,
                       cpu: BLAS.CPUFeatures, supported: Set<String>) -> Action {
        if let restarted = environment[marker] {
            let parts = restarted.split(separator: ">", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { return .none }
            return .report(restartedLine(from: parts[0], asked: parts[1], running: running, cpu: cpu))
        }
        // A value the user set, even an empty one, is theirs.
        if environment[BLAS.coreTypeVariable] != nil { return .none }
        let assumed = environment[assumedCoreForTests].flatMap { $0.isEmpty ? nil : $0 } ?? running
        guard let better = BLAS.suggestedCore(running: assumed, on: cpu, supported: supported) else { return .none }
        return .restart(core: better, from: assumed)
    }

    /// The restarted process's line: whether the core asked for took.
    static func restartedLine(from generic: String, asked: String, running: String, cpu: BLAS.CPUFeatures) -> String {
        let start = "topiary: OpenBLAS \(BLAS.version) picked its generic \(generic) kernels for this \(cpu.vectorExtension) CPU; "
        if running.lowercased() == asked.lowercased() {
            return start + "restarted with \(BLAS.coreTypeVariable)=\(asked): core \(running) now "
                + "(set \(BLAS.coreTypeVariable) yourself to choose; an empty value keeps OpenBLAS's choice)"
        }
        return start + "restarted with \(BLAS.coreTypeVariable)=\(asked), but it runs \(running) still: "
            + "dense products stay slow (set \(BLAS.coreTypeVariable) to a core your OpenBLAS knows)"
    }

    /// Applies ``decide(environment:running:cpu:supported:)`` to this process: may replace it
    /// (`execv` of `/proc/self/exe` with the same arguments) and then does not return.
    static func apply() {
        let environment = ProcessInfo.processInfo.environment
        guard environment[marker] != nil || environment[BLAS.coreTypeVariable] == nil else { return }
        let action = decide(environment: environment, running: BLAS.coreName, cpu: .current, supported: BLAS.supportedCores)
        unsetenv(marker)
        switch action {
        case .none:
            return
        case .report(let line):
            restartedFrom = environment[marker]?.split(separator: ">").first.map(String.init)
            printError(line)
        case .restart(let core, let generic):
            setenv(BLAS.coreTypeVariable, core, 1)
            setenv(marker, "\(generic)>\(core)", 1)
            execv("/proc/self/exe", CommandLine.unsafeArgv)
            // Still here: the restart failed; go on with the generic core.
            let reason = String(cString: strerror(errno))
            unsetenv(BLAS.coreTypeVariable)
            unsetenv(marker)
            printError("topiary: OpenBLAS \(BLAS.version) picked its generic \(generic) kernels for this "
                       + "\(BLAS.CPUFeatures.current.vectorExtension) CPU; restarting with \(BLAS.coreTypeVariable)=\(core) "
                       + "failed (\(reason)): dense products run slowly (set \(BLAS.coreTypeVariable)=\(core) yourself)")
        }
    }
}

/// What `topiary bench` reports about OpenBLAS (`--json`: `"blas"`).
struct BLASReport: Encodable {
    /// OpenBLAS's version, e.g. `0.3.21`.
    var version: String
    /// The core whose kernels run, e.g. `Cooperlake`.
    var core: String
    /// OpenBLAS's thread count when the command started (each benchmark cell sets its own).
    var threads: Int
    /// `pthreads`, `OpenMP` or `sequential`.
    var threading: String
    /// The build configuration, as `openblas_get_config` says it.
    var config: String
    /// `OPENBLAS_CORETYPE` as the process saw it (`null` when unset).
    @NullWhenNil var coretype: String?
    /// A better core for this CPU when the running one is generic (`null` when none).
    @NullWhenNil var suggestedCore: String?
    /// The generic core OpenBLAS picked when the CLI restarted itself with ``coretype`` (`null` when it did not).
    @NullWhenNil var restartedFrom: String?

    enum CodingKeys: String, CodingKey {
        case version, core, threads, threading, config, coretype, suggestedCore = "suggested_core", restartedFrom = "restarted_from"
    }

    /// The process's OpenBLAS now.
    static func current() -> BLASReport {
        BLASReport(version: BLAS.version, core: BLAS.coreName, threads: BLAS.threadCount, threading: BLAS.threading,
                   config: BLAS.buildConfiguration,
                   coretype: ProcessInfo.processInfo.environment[BLAS.coreTypeVariable],
                   suggestedCore: BLAS.suggestedCore, restartedFrom: BLASCoreSelection.restartedFrom)
    }

    /// One line for the text output, e.g. `OpenBLAS 0.3.21, core Cooperlake, 2 threads (pthreads)`,
    /// with a note when the core is generic and `OPENBLAS_CORETYPE` keeps it.
    var summary: String {
        var line = "OpenBLAS \(version), core \(core), \(threads) thread\(threads == 1 ? "" : "s") (\(threading))"
        if let coretype {
            line += ", \(BLAS.coreTypeVariable)=\(coretype)"
            if let restartedFrom { line += " (set by topiary: OpenBLAS picked its generic \(restartedFrom) kernels)" }
        }
        if let suggestedCore {
            line += "; note: \(core) is a generic core, \(BLAS.coreTypeVariable)=\(suggestedCore) suits this CPU"
        }
        return line
    }
}
