import ArgumentParser
@_spi(Kernels) @_spi(Benchmarking) import Topiary

@main
struct TopiaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topiary",
        abstract: "Train, prune, compress and benchmark neural networks.",
        discussion: """
        Topiary trains multilayer perceptrons on OpenBLAS, prunes them (single weights or whole \
        neurons, by magnitude and other saliencies, on a schedule, with fine-tuning), and runs the \
        pruned networks with truly compressed inference. Every command takes --json for scripts.
        """,
        subcommands: [Run.self, ReportCommand.self, Train.self, Eval.self, Prune.self, Sensitivity.self, Bench.self,
                      Inspect.self, Export.self, Import.self]
    )

    /// Restarts once with a better OpenBLAS core when OpenBLAS fell back to a generic one
    /// (``BLASCoreSelection``), then parses the arguments and runs the command.
    static func main() {
        BLASCoreSelection.apply()
        main(nil)
    }
}
