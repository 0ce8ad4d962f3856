@_spi(Fuzzing) import Topiary
import FuzzSupport

/// libFuzzer's entry point: one input through `Fuzzing.model`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzz(data, size, Fuzzing.model)
}
