import Cohort

/// What a store does on the side of a network split that sees fewer than a majority of the
/// cluster (Infinispan's `when-split`).
///
/// Without a policy both sides of a split keep writing, and when the split heals anti-entropy
/// merges them by stamp (the later write of each attribute wins): writes on the losing side of an
/// attribute are gone. ``denyWritesInMinority`` keeps the minority from writing at all, so every
/// acknowledged write is on the majority side; ``denyAllInMinority`` also refuses reads there,
/// so nobody reads a copy that may be behind.
public enum SplitBrainPolicy: String, Sendable, Equatable, CaseIterable, CustomStringConvertible {
    /// Both sides read and write (the default).
    case allowReadsAndWrites
    /// A side that sees fewer than a majority of the configured cluster size refuses writes
    /// (``CohortError/Code/noQuorum``); reads stay.
    case denyWritesInMinority
    /// A side that sees fewer than a majority refuses reads and writes.
    case denyAllInMinority

    /// Parses `allow`, `deny-writes` or `deny-all` (or the case names).
    public init?(name: String) {
        switch name.lowercased() {
        case "allow", "allowreadsandwrites", "allow-reads-and-writes": self = .allowReadsAndWrites
        case "deny-writes", "denywritesinminority", "deny-writes-in-minority": self = .denyWritesInMinority
        case "deny-all", "denyallinminority", "deny-all-in-minority": self = .denyAllInMinority
        default: return nil
        }
    }

    public var description: String { rawValue }
}

/// Checks a store's operations against its ``SplitBrainPolicy`` and the node's view.
struct SplitBrainGuard: Sendable {
    var policy: SplitBrainPolicy
    /// The configured number of nodes; nil: the channel's `minimumMembers` when above 1, else
    /// the policy cannot tell a minority and allows everything.
    var clusterSize: Int?

    /// Whether a node that sees `members` nodes (itself included) is in the minority.
    func inMinority(members: Int, minimumMembers: Int) -> Bool {
        guard let size = effectiveSize(minimumMembers: minimumMembers), size > 1 else { return false }
        return members * 2 <= size
    }

    func effectiveSize(minimumMembers: Int) -> Int? {
        clusterSize ?? (minimumMembers > 1 ? 2 * minimumMembers - 1 : nil)
    }

    /// Throws ``CohortError/Code/noQuorum`` when a write must be refused.
    func checkWrite(_ channel: GroupChannel, store: String) throws {
        guard policy != .allowReadsAndWrites else { return }
        try check(channel, store: store, what: "writes")
    }

    /// Throws ``CohortError/Code/noQuorum`` when a read must be refused.
    func checkRead(_ channel: GroupChannel, store: String) throws {
        guard policy == .denyAllInMinority else { return }
        try check(channel, store: store, what: "reads")
    }

    private func check(_ channel: GroupChannel, store: String, what: String) throws {
        let members = channel.view.members.count + 1
        let minimum = channel.configuration.minimumMembers
        guard inMinority(members: members, minimumMembers: minimum) else { return }
        let size = effectiveSize(minimumMembers: minimum) ?? members
        throw CohortError(
            .noQuorum,
            "store '\(store)' refuses \(what): this node sees \(members) of \(size) nodes, not a majority (split-brain policy \(policy)); the other side keeps the data — retry on a node that sees a majority, or wait until the network heals"
        )
    }
}
