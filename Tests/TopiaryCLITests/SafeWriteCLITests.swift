import Foundation
import XCTest

/// Saves are atomic (a temporary file in the same folder, written, `fsync`ed, renamed over the
/// target, then the folder `fsync`ed): a writer killed with `SIGKILL` in the middle of a save
/// leaves the previous file intact.
final class SafeWriteCLITests: CLITestCase {
    /// A PyTorch-style state dict `fc1`, `fc2`, … of `sizes` (F32; weights and biases `value`).
    func writeStateDict(_ sizes: [Int], value: Float, to path: String) throws {
        var entries: [String] = [], offset = 0
        for i in 1..<sizes.count {
            for (suffix, shape) in [("weight", [sizes[i], sizes[i - 1]]), ("bias", [sizes[i]])] {
                let count = shape.reduce(1, *)
                entries.append("\"fc\(i).\(suffix)\":{\"dtype\":\"F32\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + 4 * count)]}")
                offset += 4 * count
            }
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var data = Data((0..<8).map { UInt8((header.count >> (8 * $0)) & 0xFF) } + header)
        [Float](repeating: value, count: offset / 4).withUnsafeBytes { data.append(contentsOf: $0) }  // little-endian hosts
        try data.write(to: URL(fileURLWithPath: path))
    }

    func importModel(_ stateDict: String, to path: String) throws {
        let r = try run(["import", "--from", "pytorch", "--model", stateDict, "--output", path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testAWriterKilledMidSaveLeavesThePreviousFileIntact() throws {
        let dir = try temporaryDirectory()
        let big = dir.appendingPathComponent("big.safetensors").path, target = dir.appendingPathComponent("model.safetensors").path
        // About 8 MB: a dense export of it takes long enough to be caught mid-write.
        try writeStateDict([1024, 1024, 1024, 10], value: 0.001, to: dir.appendingPathComponent("big-sd.safetensors").path)
        try importModel(dir.appendingPathComponent("big-sd.safetensors").path, to: big)
        try writeStateDict([6, 4, 3], value: 0.5, to: dir.appendingPathComponent("small-sd.safetensors").path)
        try importModel(dir.appendingPathComponent("small-sd.safetensors").path, to: target)
        let previous = try Data(contentsOf: URL(fileURLWithPath: target))

        var killedMidSave = 0, completed = 0
        for trial in 0..<12 where killedMidSave < 4 {
            let process = Process()
            process.executableURL = binary
            process.arguments = ["export", "--model", big, "--output", target, "--encoding", "dense", "--json"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Wait for the temporary file to exist and hold bytes, then (after a delay that grows
            // with the trial, to land in the writes and in the fsync) kill the writer.
            var temporary: String?
            let deadline = Date().addingTimeInterval(60)
            while process.isRunning, Date() < deadline {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
                if let name = names.first(where: { $0.hasPrefix(".model.safetensors.tmp-") }),
                   let size = try? FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent(name).path)[.size] as? Int,
                   size > 0 {
                    temporary = dir.appendingPathComponent(name).path
                    break
                }
                usleep(200)
            }
            if temporary != nil {
                usleep(useconds_t(2_000 * (trial % 4)))
                kill(process.processIdentifier, SIGKILL)
            }
            process.waitUntilExit()
            let now = try Data(contentsOf: URL(fileURLWithPath: target))
            let inspect = try runChecked(["inspect", target, "--json"])
            XCTAssertEqual(inspect.status, 0, "trial \(trial): the target no longer loads: \(inspect.stderr)")
            if process.terminationReason == .uncaughtSignal {
                if now == previous {
                    killedMidSave += 1
                } else {
                    // Killed after the rename: the new file must be whole.
                    XCTAssertEqual(try json(inspect.stdout)["architecture"] as? String, "1024-1024-1024-10", "trial \(trial)")
                    completed += 1
                }
            } else {
                XCTAssertEqual(process.terminationStatus, 0)
                completed += 1
            }
            if now != previous { try previous.write(to: URL(fileURLWithPath: target)) }
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [] where name.hasPrefix(".model.safetensors.tmp-") {
                try? FileManager.default.removeItem(atPath: dir.appendingPathComponent(name).path)
            }
        }
        print("safe write: \(killedMidSave) writers killed mid-save, \(completed) completed or killed after the rename")
        XCTAssertGreaterThan(killedMidSave, 0, "no writer was caught mid-save (\(completed) completed): the check proved nothing")
    }
}
