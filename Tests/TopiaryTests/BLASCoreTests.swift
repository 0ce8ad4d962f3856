import XCTest
@_spi(Kernels) @testable import Topiary

/// The choice of OpenBLAS core: a table of running cores and CPUs, so that every branch is
/// tested on any machine; then what the loaded OpenBLAS reports here.
final class BLASCoreTests: XCTestCase {
    static let intel = "GenuineIntel", amd = "AuthenticAMD"
    static let avx: Set<String> = ["sse3", "ssse3", "sse4_1", "sse4_2", "avx"]
    static let avx2 = avx.union(["avx2", "fma"])
    static let avx512 = avx2.union(["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"])
    static let avx512bf16 = avx512.union(["avx512_bf16", "avx512_vnni"])
    /// The cores of Debian's OpenBLAS 0.3.21 that a suggestion may name.
    static let all: Set<String> = ["Sandybridge", "Haswell", "Zen", "SkylakeX", "Cooperlake"]

    func testSuggestedCoreTable() {
        typealias Case = (core: String, vendor: String, flags: Set<String>, supported: Set<String>, expected: String?)
        let cases: [Case] = [
            // The issue's machine: an Intel Xeon OpenBLAS 0.3.21 does not know, AVX-512 with BF16.
            ("Prescott", Self.intel, Self.avx512bf16, Self.all, "Cooperlake"),
            ("Prescott", Self.intel, Self.avx512, Self.all, "SkylakeX"),
            // A library without Cooperlake's kernels (before 0.3.10), or without AVX-512 ones.
            ("Prescott", Self.intel, Self.avx512bf16, ["Sandybridge", "Haswell", "Zen", "SkylakeX"], "SkylakeX"),
            ("Prescott", Self.intel, Self.avx512, ["Sandybridge", "Haswell"], "Haswell"),
            ("Prescott", Self.intel, Self.avx2, Self.all, "Haswell"),
            ("Core2", Self.intel, Self.avx, Self.all, "Sandybridge"),
            ("Nehalem", Self.intel, Self.avx2, Self.all, "Haswell"),
            ("Katmai", Self.intel, Self.avx2, Self.all, "Haswell"),
            ("Atom", Self.intel, Self.avx2, Self.all, "Haswell"),
            ("Penryn", Self.intel, Self.avx512, Self.all, "SkylakeX"),
            ("Unknown", Self.intel, Self.avx2, Self.all, "Haswell"),
            // AMD: Zen for AVX2, the AVX-512 cores for AVX-512 (as OpenBLAS 0.3.21 does on Zen 4).
            ("Barcelona", Self.amd, Self.avx2, Self.all, "Zen"),
            ("Opteron_SSE3", Self.amd, Self.avx2, ["Haswell", "Sandybridge"], "Haswell"),
            ("Prescott", Self.amd, Self.avx512bf16, Self.all, "Cooperlake"),
            // Sandybridge is the AVX fallback: replaced on AVX2, kept on AVX.
            ("Sandybridge", Self.intel, Self.avx2, Self.all, "Haswell"),
            ("Sandybridge", Self.intel, Self.avx512, Self.all, "SkylakeX"),
            ("Sandybridge", Self.intel, Self.avx, Self.all, nil),
            // Case does not matter; the suggestion is spelled as OpenBLAS spells it.
            ("PRESCOTT", Self.intel, Self.avx512, ["skylakex"], "SkylakeX"),
            // Nothing wider to run, or nothing to run it with.
            ("Prescott", Self.intel, ["sse3"], Self.all, nil),
            ("Prescott", Self.intel, Self.avx512, [], nil),
            ("Core2", Self.intel, Self.avx, ["Haswell", "SkylakeX"], nil),
            // AVX2 without FMA is not enough for Haswell's kernels; AVX-512 F without VL not for SkylakeX's.
            ("Prescott", Self.intel, Self.avx.union(["avx2"]), Self.all, "Sandybridge"),
            ("Prescott", Self.intel, Self.avx2.union(["avx512f", "avx512cd"]), Self.all, "Haswell"),
            // Cores OpenBLAS chose for the CPU are kept.
            ("Haswell", Self.intel, Self.avx512, Self.all, nil),
            ("Zen", Self.amd, Self.avx512bf16, Self.all, nil),
            ("SkylakeX", Self.intel, Self.avx512bf16, Self.all, nil),
            ("Cooperlake", Self.amd, Self.avx512bf16, Self.all, nil),
            ("Excavator", Self.amd, Self.avx2, Self.all, nil),
            ("Bulldozer", Self.amd, Self.avx, Self.all, nil),
            ("SapphireRapids", Self.intel, Self.avx512bf16, Self.all, nil),
        ]
        for c in cases {
            let cpu = BLAS.CPUFeatures(vendor: c.vendor, flags: c.flags)
            XCTAssertEqual(BLAS.suggestedCore(running: c.core, on: cpu, supported: c.supported), c.expected,
                           "\(c.core) on \(c.vendor) \(cpu.vectorExtension), library with \(c.supported.sorted())")
        }
    }

    func testCPUFeaturesReadTheFirstProcessorOfCpuinfo() {
        let text = """
        processor\t: 0
        vendor_id\t: AuthenticAMD
        cpu family\t: 25
        flags\t\t: fpu sse3 avx avx2 fma avx512f avx512bw avx512dq avx512vl avx512_bf16
        bugs\t\t: sysret_ss_attrs

        processor\t: 1
        vendor_id\t: GenuineIntel
        flags\t\t: fpu
        """
        let cpu = BLAS.CPUFeatures(cpuinfo: text)
        XCTAssertEqual(cpu.vendor, "AuthenticAMD")
        XCTAssertEqual(cpu.flags, ["fpu", "sse3", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16"])
        XCTAssertEqual(cpu.vectorExtension, "AVX-512")
        XCTAssertEqual(cpu.suitableCores, ["Cooperlake", "SkylakeX", "Zen", "Haswell", "Sandybridge"])
        let empty = BLAS.CPUFeatures(cpuinfo: "")
        XCTAssertEqual(empty, BLAS.CPUFeatures(vendor: "", flags: []))
        XCTAssertEqual(empty.vectorExtension, "no AVX")
        XCTAssertEqual(empty.suitableCores, [])
    }

    func testTheLoadedOpenBLASReportsItsVersionCoreAndKernels() throws {
        let config = BLAS.buildConfiguration
        XCTAssert(config.hasPrefix("OpenBLAS \(BLAS.version) "), config)
        XCTAssertNotNil(BLAS.version.range(of: #"^\d+\.\d+\.\d+"#, options: .regularExpression), BLAS.version)
        XCTAssertFalse(BLAS.coreName.isEmpty)
        XCTAssert(["pthreads", "OpenMP", "sequential"].contains(BLAS.threading), BLAS.threading)
        XCTAssertFalse(BLAS.carriesKernels(of: "NoSuchCore"))
        guard BLAS.isDynamicArch else { throw XCTSkip("OpenBLAS is not a DYNAMIC_ARCH build: \(config)") }
        // The running core is one the library carries; every OpenBLAS since 0.2.x carries Haswell.
        XCTAssert(BLAS.carriesKernels(of: BLAS.coreName), BLAS.coreName)
        XCTAssert(BLAS.supportedCores.contains("Haswell"), "\(BLAS.supportedCores)")
        XCTAssert(BLAS.supportedCores.isSubset(of: Self.all))
        XCTAssertEqual(BLAS.suggestedCore,
                       BLAS.suggestedCore(running: BLAS.coreName, on: .current, supported: BLAS.supportedCores))
    }
}
