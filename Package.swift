// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Topiary",
    products: [
        .library(name: "Topiary", targets: ["Topiary"]),
        .executable(name: "topiary", targets: ["TopiaryCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Recipes of `topiary run` (the CLI only; the library has no dependency).
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // `swift package generate-documentation` (a plugin: nothing is linked).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // Public API.
        .target(
            name: "Topiary",
            dependencies: ["CBLAS", "CZlib", "CSparseKernels"]
        ),
        .executableTarget(
            name: "TopiaryCLI",
            dependencies: [
                "Topiary",
                "TopiaryBenchmarking",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),

        // Implementation details: system libraries and C kernels (not API).
        .systemLibrary(
            name: "CBLAS",
            path: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            path: "Sources/CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(name: "CSparseKernels"),

        // Benchmarks (a dependency-free harness: warm-up, repeated runs, medians). Not a product:
        // `topiary bench` and TopiaryBenchmarks use it through the library's SPI.
        .target(
            name: "TopiaryBenchmarking",
            dependencies: ["Topiary"]
        ),
        .executableTarget(
            name: "TopiaryBenchmarks",
            dependencies: ["Topiary", "TopiaryBenchmarking"],
            path: "Benchmarks/TopiaryBenchmarks"
        ),

        // Tests.
        .testTarget(name: "TopiaryTests", dependencies: ["Topiary"], exclude: ["Fixtures"]),
        .testTarget(name: "TopiaryBenchmarkingTests", dependencies: ["TopiaryBenchmarking"]),
        .testTarget(name: "TopiaryCLITests", dependencies: ["TopiaryCLI"]),
        .testTarget(name: "TopiaryAPITests", dependencies: ["Topiary"]),
    ],
    swiftLanguageModes: [.v5]
)
