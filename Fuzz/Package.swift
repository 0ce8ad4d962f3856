// swift-tools-version:6.1
// libFuzzer targets for Topiary's file readers (docs/fuzzing.md). A package of its own, so that
// the main package's `swift build` and `swift test` never compile it; `scripts/fuzz` builds it
// with `--sanitize=fuzzer --sanitize=address` and runs each target for a bounded time.
import PackageDescription

let targets = ["Model", "Npy", "Npz", "IDX"]

let package = Package(
    name: "TopiaryFuzz",
    dependencies: [.package(name: "Topiary", path: "..")],
    targets: [
        // The harness: one input through one reader, a TopiaryError is fine, anything else is a finding.
        .target(name: "FuzzSupport", dependencies: [.product(name: "Topiary", package: "Topiary")]),
    ] + targets.map { name in
        .executableTarget(name: "Fuzz\(name)", dependencies: ["FuzzSupport", .product(name: "Topiary", package: "Topiary")])
    },
    swiftLanguageModes: [.v5]
)
