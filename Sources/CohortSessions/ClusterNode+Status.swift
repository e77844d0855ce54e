import Cohort
import Foundation
import NIOConcurrencyHelpers

/// A member as `GET /cluster/members` reports it.
public struct MemberStatus: Codable, Sendable, Equatable {
    public var name: String
    public var address: String
    /// `self`, `alive` or `suspected`.
    public var state: String
    /// When this node first saw the member (ISO 8601).
    public var since: String
    public var id: String

    /// Creates a member's status.
    public init(name: String, address: String, state: String, since: String, id: String) {
        self.name = name
        self.address = address
        self.state = state
        self.since = since
        self.id = id
    }
}

/// The body of `GET /cluster/members`.
public struct MembersResponse: Codable, Sendable {
    public var node: String
    public var members: [MemberStatus]

    /// Creates the answer.
    public init(node: String, members: [MemberStatus]) {
        self.node = node
        self.members = members
    }
}

/// The body of `GET /cluster/sessions`.
public struct SessionCountResponse: Codable, Sendable {
    public var node: String
    public var sessions: Int

    /// Creates the answer.
    public init(node: String, sessions: Int) {
        self.node = node
        self.sessions = sessions
    }
}

/// The body of `GET /cluster/status` (and of `POST /cluster/leave`): what `cohort status` shows.
public struct NodeStatusResponse: Codable, Sendable, Equatable {
    /// The node's name.
    public var node: String
    /// Whether the node serves (``ClusterNode/isReady``): the same answer as `GET /ready`.
    public var ready: Bool
    /// `starting` (state transfer under way), `serving`, `no-quorum` (ready but short of the
    /// minimum members), `leaving` / `stopping` (handing off), or `left` / `stopped`.
    public var state: String
    /// The quorum as the channel sees it.
    public var quorum: Quorum
    /// The session state transfer.
    public var transfer: Transfer
    /// `delta` or `backup`.
    public var manager: String
    /// Sessions this node holds (the count of `GET /cluster/sessions`).
    public var sessions: Int
    /// The node's cluster address.
    public var address: String
    /// When the node started (ISO 8601).
    public var started: String

    /// The quorum part of a status.
    public struct Quorum: Codable, Sendable, Equatable {
        /// Whether ``members`` reaches ``minimum``.
        public var inQuorum: Bool
        /// Members in the view, the node included.
        public var members: Int
        /// The configured minimum (`ClusterConfiguration.minimumMembers`).
        public var minimum: Int
    }

    /// The state-transfer part of a status.
    public struct Transfer: Codable, Sendable, Equatable {
        /// `in-progress` until the manager holds what it should, then `done`.
        public var state: String
        /// Sessions received in the transfer (0 for a first node, or a backup manager).
        public var sessions: Int
        /// How long the start-up took, in seconds, once done.
        public var seconds: Double?
    }
}

extension ClusterNode {
    /// The members as `GET /cluster/members` reports them.
    public func membersResponse() -> MembersResponse {
        let view = channel.view
        let iso = ISO8601DateFormatter()
        var list = [MemberStatus(name: view.local.name, address: view.local.endpoint.description, state: "self", since: iso.string(from: started), id: view.local.id.description)]
        for member in view.members {
            list.append(MemberStatus(
                name: member.name,
                address: member.endpoint.description,
                state: view.suspected.contains(member.id) ? "suspected" : "alive",
                since: iso.string(from: memberSince(member.id) ?? started),
                id: member.id.description
            ))
        }
        return MembersResponse(node: view.local.name, members: list)
    }

    /// The node's state as `GET /cluster/status` reports it.
    public func status() async -> NodeStatusResponse {
        let count = await sessions.sessionIDs().count
        let flags = state.withLockedValue { (ready: $0.ready, stopping: $0.stopping, left: $0.left, leave: $0.leaveRequested) }
        let quorum = channel.quorum
        let statistics = sessions.statistics
        let phase: String
        switch (flags.stopping, flags.left, flags.leave) {
        case (true, true, true): phase = "left"
        case (true, true, false): phase = "stopped"
        case (true, false, true): phase = "leaving"
        case (true, false, false): phase = "stopping"
        default: phase = !flags.ready ? "starting" : quorum.inQuorum ? "serving" : "no-quorum"
        }
        let transferSeconds = statistics.transferTime.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }
        return NodeStatusResponse(
            node: channel.localMember.name,
            ready: isReady,
            state: phase,
            quorum: .init(inQuorum: quorum.inQuorum, members: quorum.members, minimum: quorum.minimum),
            transfer: .init(state: flags.ready ? "done" : "in-progress", sessions: statistics.transferredSessions, seconds: flags.ready ? transferSeconds : nil),
            manager: sessions is BackupSessionManager ? ManagerKind.backup.rawValue : ManagerKind.delta.rawValue,
            sessions: count,
            address: channel.localMember.endpoint.description,
            started: ISO8601DateFormatter().string(from: started)
        )
    }
}
