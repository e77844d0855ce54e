import Foundation

/// A member process the driver controls through pipes.
final class MemberProcess {
    let name: String
    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffered = Data()

    init(executable: String, name: String, arguments: [String]) throws {
        self.name = name
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["node", name] + arguments
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// Sends a command and returns the answer line.
    func ask(_ command: String) throws -> String {
        input.fileHandleForWriting.write(Data((command + "\n").utf8))
        return try readLine()
    }

    func readLine() throws -> String {
        while true {
            if let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffered[buffered.startIndex..<newline], as: UTF8.self)
                buffered.removeSubrange(buffered.startIndex...newline)
                return line
            }
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw DriverError("\(name) exited") }
            buffered.append(chunk)
        }
    }

    func quit() {
        input.fileHandleForWriting.write(Data("quit\n".utf8))
        input.fileHandleForWriting.closeFile()
        process.waitUntilExit()
    }

    /// User + system CPU time of the process so far, in nanoseconds (/proc/PID/stat).
    var cpuNanos: Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the name: state is field 3, utime 14, stime 15 (1-based over the whole line).
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) * 1e9 / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

struct DriverError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One measured point.
struct PointResult {
    var k: Int
    var mode: String
    var size: Int
    var perReceiver: Double
    var aggregateMBs: Double
    var p50: Double
    var p99: Double
    var p999: Double
    var cpuMicrosPerMessage: Double
    var failed: Int
}

/// Whole-machine busy fraction over an interval, from /proc/stat (to flag noisy windows).
struct MachineLoad {
    static func sample() -> (busy: Double, total: Double) {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = stat.split(separator: "\n").first
        else { return (0, 0) }
        let values = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard values.count >= 5 else { return (0, 0) }
        let idle = values[3] + values[4]
        let total = values.reduce(0, +)
        return (total - idle, total)
    }
}

/// Runs the points: K receivers and one sender per cluster, every (mode, size) point per K.
func runDriver(ks: [Int], sizes: [Int], modes: [String], settle: Double, measure: Double, executable: String) throws -> [PointResult] {
    var results: [PointResult] = []
    var port = 0
    for k in ks {
        var receivers: [MemberProcess] = []
        var endpoints: [String] = []
        for i in 0..<k {
            let receiver = try MemberProcess(executable: executable, name: "r\(i + 1)", arguments: ["127.0.0.1:\(port)", ""])
            let ready = try receiver.readLine().split(separator: " ")
            guard ready.first == "ready", ready.count >= 2 else { throw DriverError("receiver r\(i + 1): \(ready)") }
            endpoints.append("127.0.0.1:\(ready[1])")
            receivers.append(receiver)
        }
        let sender = try MemberProcess(executable: executable, name: "sender", arguments: ["127.0.0.1:\(port)", endpoints.joined(separator: ",")])
        let ready = try sender.readLine()
        guard ready.hasPrefix("ready") else { throw DriverError("sender: \(ready)") }
        port = 0
        // Warm-up, as the Tribes harness does: some of each mode at 1 KiB.
        for mode in modes {
            _ = try sender.ask("start \(mode) 1024")
            Thread.sleep(forTimeInterval: 1.5)
            _ = try sender.ask("stop")
        }
        for mode in modes {
            for size in sizes {
                _ = try sender.ask("start \(mode) \(size)")
                Thread.sleep(forTimeInterval: settle)
                func snapshot() throws -> (t: Double, messages: [Double], cpu: Double) {
                    var messages: [Double] = []
                    var t = 0.0
                    for receiver in receivers {
                        let fields = try receiver.ask("stats").split(separator: " ")
                        t = Double(fields[1]) ?? 0
                        messages.append(Double(fields[2]) ?? 0)
                    }
                    let cpu = ([sender] + receivers).map(\.cpuNanos).reduce(0, +)
                    return (t, messages, cpu)
                }
                _ = try sender.ask("mark")
                let before = try snapshot()
                Thread.sleep(forTimeInterval: measure)
                let after = try snapshot()
                let stopped = try sender.ask("stop").split(separator: " ")
                let seconds = (after.t - before.t) / 1e9
                let delivered = zip(after.messages, before.messages).map { $0 - $1 }
                let perReceiver = delivered.reduce(0, +) / Double(k) / seconds
                let totalDelivered = delivered.reduce(0, +)
                let result = PointResult(
                    k: k, mode: mode, size: size,
                    perReceiver: perReceiver,
                    aggregateMBs: totalDelivered * Double(size) / seconds / 1e6,
                    p50: mode == "async" ? 0 : Double(stopped[3]) ?? 0,
                    p99: mode == "async" ? 0 : Double(stopped[4]) ?? 0,
                    p999: mode == "async" ? 0 : Double(stopped[5]) ?? 0,
                    cpuMicrosPerMessage: (after.cpu - before.cpu) / 1000 / max(1, totalDelivered / Double(k)),
                    failed: Int(stopped[2]) ?? 0
                )
                results.append(result)
                FileHandle.standardError.write(Data("\(format(result))\n".utf8))
                // Let the receivers drain before the next point: their counts must stand still
                // for three checks in a row (at most 60 s).
                var last = -1.0
                var still = 0
                for _ in 0..<300 where still < 3 {
                    let now = try snapshot().messages.reduce(0, +)
                    still = now == last ? still + 1 : 0
                    last = now
                    Thread.sleep(forTimeInterval: 0.2)
                }
            }
        }
        sender.quit()
        for receiver in receivers { receiver.quit() }
    }
    return results
}

func format(_ r: PointResult) -> String {
    func n(_ v: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", v) }
    let latency = r.mode == "async" ? "| | |" : "| \(n(r.p50)) | \(n(r.p99)) | \(n(r.p999))"
    let size = r.size >= 1024 ? "\(r.size / 1024) KiB" : "\(r.size) B"
    return "| \(r.k) | \(r.mode) | \(size) | \(n(r.perReceiver)) | \(n(r.aggregateMBs, 1)) \(latency) | \(n(r.cpuMicrosPerMessage, 1)) | \(r.failed) |"
}
