import ArgumentParser
import CohortSessions
import Foundation
import NIOHTTP1

/// Options every admin command takes.
struct AdminOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The node's admin address: its HTTP address, where `cohort serve` mounts /cluster/*.", valueName: "HOST:PORT"))
    var admin: String = "127.0.0.1:8081"
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Option(help: "Seconds a request may take.") var timeout: Double = 10

    var client: AdminClient { AdminClient(address: admin, timeout: timeout) }

    /// Runs a command body; a failure is one line on standard error and exit status 1.
    func run(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let failure as AdminClient.Failure {
            Console.error("cohort: \(failure.description)")
            throw ExitCode(1)
        }
    }
}

struct MembersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "members",
        abstract: "List the members a running node sees (GET /cluster/members).",
        discussion: "STATE is self, alive or suspected; SINCE is when the node first saw the member."
    )
    @OptionGroup var options: AdminOptions

    func run() async throws {
        try await options.run {
            let answer = try await options.client.get("/cluster/members", as: MembersResponse.self)
            if options.json { return Console.line(AdminClient.json(answer)) }
            Console.line("Members seen by \(answer.node): \(answer.members.count)")
            let rows = answer.members.map { [$0.name, $0.state, $0.address, $0.since, $0.id] }
            Console.line(AdminTable.render(header: ["NAME", "STATE", "ADDRESS", "SINCE", "ID"], rows: rows))
        }
    }
}

struct SessionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions",
        abstract: "Show how many sessions a running node holds (GET /cluster/sessions)."
    )
    @OptionGroup var options: AdminOptions

    func run() async throws {
        try await options.run {
            let answer = try await options.client.get("/cluster/sessions", as: SessionCountResponse.self)
            if options.json { return Console.line(AdminClient.json(answer)) }
            Console.line("\(answer.node) holds \(answer.sessions) session\(answer.sessions == 1 ? "" : "s")")
        }
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show whether a running node serves: ready, state, quorum, state transfer (GET /cluster/status).",
        discussion: "Exit status 0 when the node answered (ready or not), 1 when it could not be asked."
    )
    @OptionGroup var options: AdminOptions

    func run() async throws {
        try await options.run {
            let status = try await options.client.get("/cluster/status", as: NodeStatusResponse.self)
            Console.line(options.json ? AdminClient.json(status) : Self.describe(status))
        }
    }

    static func describe(_ status: NodeStatusResponse) -> String {
        let quorum = status.quorum
        var transfer = status.transfer.state
        if status.transfer.state == "done" {
            transfer += ": \(status.transfer.sessions) session\(status.transfer.sessions == 1 ? "" : "s") received"
            if let seconds = status.transfer.seconds { transfer += String(format: " in %.2f s", seconds) }
        }
        let rows = [
            ["node", "\(status.node) (\(status.address))"],
            ["ready", status.ready ? "yes" : "no"],
            ["state", status.state],
            ["quorum", "\(quorum.members) of at least \(quorum.minimum) member\(quorum.minimum == 1 ? "" : "s") — \(quorum.inQuorum ? "in quorum" : "NOT in quorum")"],
            ["transfer", transfer],
            ["manager", status.manager],
            ["sessions", "\(status.sessions)"],
            ["started", status.started],
        ]
        return AdminTable.render(header: nil, rows: rows)
    }
}

struct LeaveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leave",
        abstract: "Make a running node leave the cluster gracefully (POST /cluster/leave).",
        discussion: """
            The node reports not-ready, hands off the sessions only it holds, and leaves the \
            group; its process keeps running (answering 503) until it is stopped. Waits until the \
            node says `left`, at most --wait seconds. The node must allow it: `cohort serve` does \
            on a loopback HTTP address, or with --allow-leave.
            """
    )
    @OptionGroup var options: AdminOptions
    @Option(help: "Seconds to wait for the node to have left (0: do not wait).") var wait: Double = 60
    @Option(help: "Seconds to wait before asking (the node keeps serving meanwhile: in a preStop hook, while balancers stop routing to the pod).")
    var delay: Double = 0

    func run() async throws {
        try await options.run {
            let client = options.client
            if delay > 0 { try await Task.sleep(for: .milliseconds(Int64(delay * 1000))) }
            let (code, body) = try await client.request(.POST, "/cluster/leave")
            switch code {
            case 202, 200: break
            case 404, 405:
                throw AdminClient.Failure(description: "\(options.admin) does not accept POST /cluster/leave (404): start the node with --allow-leave, or on a loopback HTTP address")
            default:
                throw AdminClient.Failure(description: "\(options.admin)/cluster/leave answered \(code): \(String(decoding: body.prefix(300), as: UTF8.self))")
            }
            var status = try AdminClient.decode(NodeStatusResponse.self, body, from: "/cluster/leave")
            if !options.json { Console.line("\(status.node): leave requested — handing off sessions, then leaving the group") }
            let deadline = Date().addingTimeInterval(wait)
            while wait > 0, !["left", "stopped"].contains(status.state), Date() < deadline {
                try await Task.sleep(for: .milliseconds(200))
                status = try await client.get("/cluster/status", as: NodeStatusResponse.self)
            }
            if options.json { return Console.line(AdminClient.json(status)) }
            if ["left", "stopped"].contains(status.state) {
                Console.line("\(status.node) left the cluster; it holds \(status.sessions) session\(status.sessions == 1 ? "" : "s") and answers 503 until it is stopped")
            } else if wait > 0 {
                Console.line("\(status.node) is still \(status.state) after \(Int(wait)) s")
                throw ExitCode(1)
            }
        }
    }
}

/// Left-aligned columns.
enum AdminTable {
    static func render(header: [String]?, rows: [[String]]) -> String {
        let all = (header.map { [$0] } ?? []) + rows
        let columns = all.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in all { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return all.map { row in
            row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
