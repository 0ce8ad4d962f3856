import Foundation

// Which OpenBLAS core suits the CPU: a generic core is detected and a better one suggested.

extension BLAS {
    /// `OPENBLAS_CORETYPE`, the environment variable that chooses the core whose kernels OpenBLAS runs.
    ///
    /// A DYNAMIC_ARCH OpenBLAS (Debian's, and the one in Topiary's bundle) carries kernels for
    /// many cores and picks one when the library loads, from the CPU's vendor, family and model.
    /// A CPU newer than the OpenBLAS release gets a generic core: OpenBLAS 0.3.21 runs its
    /// Prescott (SSE3) kernels on an Intel Xeon of family 6, model 207, where `sgemm` then takes
    /// 3× as long as with `OPENBLAS_CORETYPE=SkylakeX`. Every dense product of Topiary (training,
    /// dense layers, the dense-masked baseline) is that much slower, silently.
    ///
    /// OpenBLAS reads the variable once, when it loads, so it must be set before the process
    /// starts; names are case-insensitive, and one the library does not know is ignored silently
    /// (``coreName`` tells which core runs). ``suggestedCore`` says when the running core is a
    /// generic one and which core would suit the CPU; an application can warn:
    ///
    /// ```swift
    /// if let better = BLAS.suggestedCore {
    ///     print("OpenBLAS runs its generic \(BLAS.coreName) kernels; OPENBLAS_CORETYPE=\(better) makes dense products faster")
    /// }
    /// ```
    ///
    /// The `topiary` CLI restarts itself once with the variable set to ``suggestedCore`` and
    /// says so on standard error, unless the variable is in its environment: a value the user set,
    /// even an empty one (which OpenBLAS treats as unset), is never overridden.
    public static let coreTypeVariable = "OPENBLAS_CORETYPE"

    /// The OpenBLAS version from ``buildConfiguration``, e.g. `0.3.21` (`unknown` if it does not say).
    public static var version: String {
        let words = buildConfiguration.split(separator: " ")
        guard let i = words.firstIndex(of: "OpenBLAS"), i + 1 < words.count else { return "unknown" }
        return String(words[i + 1])
    }

    /// Whether OpenBLAS carries kernels for several cores and picks one at load time
    /// (DYNAMIC_ARCH), so that ``coreTypeVariable`` has an effect.
    public static var isDynamicArch: Bool {
        buildConfiguration.split(separator: " ").contains("DYNAMIC_ARCH")
    }

    /// The cores ``suggestedCore(running:on:supported:)`` may suggest that the loaded OpenBLAS
    /// carries kernels for (empty unless it is a DYNAMIC_ARCH build).
    public static var supportedCores: Set<String> {
        guard isDynamicArch else { return [] }
        return Set(suggestibleCores.map(\.name).filter(carriesKernels(of:)))
    }

    /// A better core than the running one for this CPU, or `nil` when OpenBLAS's choice stands:
    /// ``suggestedCore(running:on:supported:)`` for ``coreName``, ``CPUFeatures/current`` and
    /// ``supportedCores``.
    ///
    /// It describes the process as it runs: with `OPENBLAS_CORETYPE=Prescott` set on an AVX-512
    /// CPU it suggests `SkylakeX` too. See ``coreTypeVariable``.
    public static var suggestedCore: String? {
        suggestedCore(running: coreName, on: .current, supported: supportedCores)
    }

    /// The cores OpenBLAS falls back to, whose kernels use no AVX: its generic x86-64 cores
    /// (Prescott for an Intel CPU it does not know) and the cores of CPUs before 2011.
    /// Lower case; `unknown` is what a build without DYNAMIC_ARCH may report.
    static let genericCores: Set<String> = [
        "unknown", "katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn",
        "dunnington", "nehalem", "athlon", "opteron", "opteron_sse3", "barcelona", "nano", "bobcat",
    ]

    /// The cores a suggestion names, with the instruction-set level of their kernels
    /// (1: AVX, 2: AVX2 and FMA, 3: AVX-512), best first, spelled as OpenBLAS spells them.
    static let suggestibleCores: [(name: String, level: Int)] = [
        ("Cooperlake", 3), ("SkylakeX", 3), ("Zen", 2), ("Haswell", 2), ("Sandybridge", 1),
    ]

    /// The core OpenBLAS should run instead of `core` on a CPU with `cpu`'s features, or `nil`.
    ///
    /// Only a generic core (one with no AVX kernels: Prescott, Core2, Nehalem, Katmai, Atom…, see
    /// OpenBLAS's DYNAMIC_ARCH core list) or `Sandybridge` (AVX without FMA, where a CPU with AVX2
    /// got the AVX fallback) is replaced, and only by a core with wider kernels that `supported`
    /// holds: `Cooperlake` on AVX-512 F, BW, DQ and VL with BF16, else `SkylakeX`; on AVX2 with
    /// FMA, `Zen` for an AMD CPU, else `Haswell`; `Sandybridge` on AVX. A core OpenBLAS chose for
    /// its CPU (`Haswell`, `Zen`, `SkylakeX`, AMD's `Bulldozer` to `Excavator`, …) is kept: the
    /// point is to undo a fallback, not to second-guess the library.
    ///
    /// - Parameters:
    ///   - core: the running core, as ``coreName`` reports it (case does not matter).
    ///   - cpu: the CPU's vendor and feature flags.
    ///   - supported: the cores the library carries kernels for (``supportedCores``).
    public static func suggestedCore(running core: String, on cpu: CPUFeatures, supported: Set<String>) -> String? {
        let running = core.lowercased()
        let level: Int
        if genericCores.contains(running) {
            level = 0
        } else if running == "sandybridge" {
            level = 1
        } else {
            return nil
        }
        let available = Set(supported.map { $0.lowercased() })
        return cpu.suitableCores.first { candidate in
            available.contains(candidate.lowercased())
                && (suggestibleCores.first { $0.name == candidate }?.level ?? 0) > level
        }
    }

    /// A CPU's vendor and feature flags, as Linux reports them in `/proc/cpuinfo` (the kernel
    /// leaves out the features the operating system does not enable).
    public struct CPUFeatures: Sendable, Equatable {
        /// The vendor string: `GenuineIntel`, `AuthenticAMD`, …
        public var vendor: String
        /// The feature flags, spelled as `/proc/cpuinfo` spells them: `avx2`, `fma`, `avx512f`, `avx512_bf16`, …
        public var flags: Set<String>

        /// Creates a feature set.
        public init(vendor: String, flags: Set<String>) {
            self.vendor = vendor
            self.flags = flags
        }

        /// Reads the first processor of a `/proc/cpuinfo` text: its `vendor_id` and `flags` lines.
        public init(cpuinfo: String) {
            var vendor = "", flags: Set<String> = []
            for line in cpuinfo.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2 else { continue }
                let key = parts[0].trimmingCharacters(in: .whitespaces)
                if key == "vendor_id", vendor.isEmpty {
                    vendor = parts[1].trimmingCharacters(in: .whitespaces)
                } else if key == "flags", flags.isEmpty {
                    flags = Set(parts[1].split(separator: " ").map(String.init))
                }
                if !vendor.isEmpty, !flags.isEmpty { break }
            }
            self.init(vendor: vendor, flags: flags)
        }

        /// This machine's CPU (no flags where `/proc/cpuinfo` cannot be read).
        public static let current = CPUFeatures(cpuinfo: (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "")

        /// AVX-512 Foundation, Byte and Word, Doubleword and Quadword, and Vector Length: what
        /// OpenBLAS's SkylakeX kernels use.
        public var hasAVX512: Bool { flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) }
        /// AVX2 and FMA: what the Haswell and Zen kernels use.
        public var hasAVX2: Bool { flags.isSuperset(of: ["avx2", "fma"]) }
        /// AVX: what the Sandybridge kernels use.
        public var hasAVX: Bool { flags.contains("avx") }

        /// The widest vector extension that matters for the choice of core: `AVX-512`,
        /// `AVX2+FMA`, `AVX` or `no AVX`.
        public var vectorExtension: String {
            hasAVX512 ? "AVX-512" : hasAVX2 ? "AVX2+FMA" : hasAVX ? "AVX" : "no AVX"
        }

        /// The cores whose kernels this CPU runs, best first.
        var suitableCores: [String] {
            var cores: [String] = []
            if hasAVX512 {
                if flags.contains("avx512_bf16") { cores.append("Cooperlake") }
                cores.append("SkylakeX")
            }
            if hasAVX2 {
                if vendor == "AuthenticAMD" || vendor == "HygonGenuine" { cores.append("Zen") }
                cores.append("Haswell")
            }
            if hasAVX { cores.append("Sandybridge") }
            return cores
        }
    }
}
