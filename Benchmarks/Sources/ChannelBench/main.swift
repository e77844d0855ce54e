// The raw-channel bench, shaped like the Tribes anchor harness (../shared/anchors/tribes): one
// sender and K receivers, each a process of its own on loopback, payloads of 128 B to 256 KiB,
// asynchronous and acknowledged (`processed`, Tribes' sync_ack) sends, counted at the receivers.
// Prints messages/s per receiver, aggregate MB/s, latency percentiles of the acknowledged send
// (closed loop, one message outstanding) and CPU µs per message over every process.
//
//   ChannelBench [--ks 1,2,3] [--sizes 128,1024,16384,262144] [--modes async,processed]
//                [--settle 2] [--measure 5] [--csv FILE]
//   ChannelBench node NAME LISTEN MEMBERS          (started by the driver)
import Cohort
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "node" {
    guard arguments.count >= 3 else { fatalError("usage: ChannelBench node NAME LISTEN [MEMBERS]") }
    let members = arguments.count > 3 ? arguments[3].split(separator: ",").map(String.init) : []
    try await runNode(
        name: arguments[1],
        listen: try Endpoint(parsing: arguments[2]),
        members: try members.filter { !$0.isEmpty }.map { try Endpoint(parsing: $0) }
    )
    exit(0)
}

func option(_ name: String, _ fallback: String) -> String {
    guard let index = arguments.firstIndex(of: "--\(name)"), index + 1 < arguments.count else { return fallback }
    return arguments[index + 1]
}
let ks = option("ks", "1,2,3").split(separator: ",").compactMap { Int($0) }
let sizes = option("sizes", "128,1024,16384,262144").split(separator: ",").compactMap { Int($0) }
let modes = option("modes", "async,processed").split(separator: ",").map(String.init)
let settle = Double(option("settle", "2")) ?? 2
let measure = Double(option("measure", "5")) ?? 5
let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path

print("| K | mode | payload | msg/s per rcv | agg MB/s | p50 µs | p99 µs | p999 µs | cpu-us/msg | failed |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
let results = try runDriver(ks: ks, sizes: sizes, modes: modes, settle: settle, measure: measure, executable: executable)
for result in results { print(format(result)) }
let csv = option("csv", "")
if !csv.isEmpty {
    var text = "kind,k,mode,payload,msgs_per_rcv,agg_mbs,p50_us,p99_us,p999_us,cpu_us_per_msg,failed\n"
    for r in results {
        text += "cohort,\(r.k),\(r.mode),\(r.size),\(r.perReceiver),\(r.aggregateMBs),\(r.p50),\(r.p99),\(r.p999),\(r.cpuMicrosPerMessage),\(r.failed)\n"
    }
    try text.write(toFile: csv, atomically: true, encoding: .utf8)
}
