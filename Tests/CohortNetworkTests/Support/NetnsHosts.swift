import CohortCore
import Dispatch
import Foundation
import NIOConcurrencyHelpers

/// A test network of hosts in Linux network namespaces, driven through scripts/netns.
///
/// Host `i` (1…count) has the address `10.231.0.i` on its `eth0`, plugged into a bridge of its
/// own namespace; the addresses exist only inside these namespaces. ``cleanup()`` removes
/// everything (idempotent); it runs on deinit, and on SIGINT/SIGTERM/SIGHUP of the test process.
final class NetnsHosts: @unchecked Sendable {
    /// Why namespaces cannot be used here, or nil when they can (root, `ip netns` works, and
    /// making a namespace with a bridge and a veth pair actually succeeds).
    static let unavailableReason: String? = {
        guard getuid() == 0 else { return "network-namespace tests need root (uid is \(getuid())); CI runs as root" }
        guard FileManager.default.isExecutableFile(atPath: Paths.netnsScript) else { return "scripts/netns not found at \(Paths.netnsScript)" }
        // Remove namespaces of earlier runs that were killed before they could clean up.
        shell(Paths.netnsScript, ["cleanup-stale"])
        let check = shell(Paths.netnsScript, ["check"])
        return check.status == 0 ? nil : check.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }()

    /// Whether namespaces can be used here.
    static var isAvailable: Bool { unavailableReason == nil }

    /// Why `tc netem` cannot be used here, or nil when it can.
    static let netemUnavailableReason: String? = {
        if let reason = unavailableReason { return reason }
        let probe = shell(Paths.netnsScript, ["has-netem"])
        return probe.status == 0 ? nil : probe.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }()

    private static let counter = NIOLockedValueBox(0)
    private static let active = NIOLockedValueBox(Set<String>())
    nonisolated(unsafe) private static let signalSources: [any DispatchSourceSignal] = {
        [SIGINT, SIGTERM, SIGHUP].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                for prefix in active.withLockedValue({ $0 }) { shell(Paths.netnsScript, ["cleanup", prefix]) }
                signal(number, SIG_DFL)
                raise(number)
            }
            source.resume()
            return source
        }
    }()

    /// The namespace name prefix (`cohortns-PID-N`).
    let prefix: String
    /// How many hosts.
    let count: Int
    private let cleaned = NIOLockedValueBox(false)

    /// Creates `count` hosts.
    ///
    /// - Throws: when the script fails (it removes what it made).
    init(count: Int) throws {
        _ = Self.signalSources
        let n = Self.counter.withLockedValue { value -> Int in
            value += 1
            return value
        }
        prefix = "cohortns-\(getpid())-\(n)"
        self.count = count
        Self.active.withLockedValue { _ = $0.insert(prefix) }
        let result = shell(Paths.netnsScript, ["create", prefix, "\(count)"])
        guard result.status == 0 else {
            cleanup()
            throw NetnsError(message: "scripts/netns create failed: \(result.output)")
        }
    }

    /// Host `i`'s address.
    func address(_ i: Int) -> String { "10.231.0.\(i)" }

    /// The namespace of host `i`.
    func namespace(_ i: Int) -> String { "\(prefix)-h\(i)" }

    /// The command line that runs `executable arguments` on host `i` (`ip netns exec` executes
    /// it in place, so signals to the process reach the program itself).
    func command(on i: Int, _ executable: String, _ arguments: [String]) -> (executable: String, arguments: [String]) {
        ("/usr/bin/env", ["ip", "netns", "exec", namespace(i), executable] + arguments)
    }

    /// Unplugs host `i` (its switch port goes down: no packet in or out, no error to its sockets).
    func cut(_ i: Int) throws { try run(["cut", prefix, "\(i)"]) }

    /// Plugs host `i` back in.
    func restore(_ i: Int) throws { try run(["restore", prefix, "\(i)"]) }

    /// Applies `tc netem` to host `i`'s packets (for example `delay 50ms loss 5%`).
    func netem(_ i: Int, _ spec: [String]) throws { try run(["netem", prefix, "\(i)"] + spec) }

    private func run(_ arguments: [String]) throws {
        let result = shell(Paths.netnsScript, arguments)
        guard result.status == 0 else { throw NetnsError(message: "scripts/netns \(arguments.joined(separator: " ")): \(result.output)") }
    }

    /// Removes every namespace of this network (and stops processes still inside). Idempotent.
    func cleanup() {
        let first = cleaned.withLockedValue { done -> Bool in
            defer { done = true }
            return !done
        }
        guard first else { return }
        shell(Paths.netnsScript, ["cleanup", prefix])
        Self.active.withLockedValue { _ = $0.remove(prefix) }
    }

    deinit { cleanup() }
}

struct NetnsError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
