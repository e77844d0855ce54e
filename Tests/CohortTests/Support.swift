import Cohort
import CohortTestKit
import NIOConcurrencyHelpers

struct Ping: ClusterMessage, Equatable {
    static let messageType = MessageType(2001)
    var n: Int
    var note: String = ""
}

struct Boom: ClusterMessage {
    static let messageType = MessageType(2002)
}

struct BigBlob: ClusterMessage {
    static let messageType = MessageType(2003)
    var bytes: [UInt8]
}

/// Counts messages per node.
final class Counts: Sendable {
    let values: NIOLockedValueBox<[Int]>
    init(_ n: Int) { values = NIOLockedValueBox(Array(repeating: 0, count: n)) }
    subscript(i: Int) -> Int { values.withLockedValue { $0[i] } }
    func bump(_ i: Int) { values.withLockedValue { $0[i] += 1 } }
}

/// Collects membership events of one node.
final class EventLog: Sendable {
    private let box = NIOLockedValueBox<[(MembershipEvent, ContinuousClock.Instant)]>([])
    private let task: NIOLockedValueBox<Task<Void, Never>?> = NIOLockedValueBox(nil)

    init(_ channel: GroupChannel) {
        let stream = channel.membershipEvents()
        let box = self.box
        task.withLockedValue {
            $0 = Task {
                for await event in stream { box.withLockedValue { $0.append((event, ContinuousClock.now)) } }
            }
        }
    }

    var events: [MembershipEvent] { box.withLockedValue { $0.map(\.0) } }

    func first(_ match: (MembershipEvent) -> Bool) -> (MembershipEvent, ContinuousClock.Instant)? {
        box.withLockedValue { $0.first { match($0.0) } }
    }

    func timeline(since start: ContinuousClock.Instant) -> String {
        box.withLockedValue { $0.map { "\($0.0) at \($0.1 - start)" }.joined(separator: "; ") }
    }

    func contains(_ match: (MembershipEvent) -> Bool) -> Bool { first(match) != nil }

    deinit { task.withLockedValue { $0?.cancel() } }
}

func isRemoved(_ name: String) -> (MembershipEvent) -> Bool {
    { if case .removed(let m) = $0 { return m.name == name }; return false }
}
func isLeft(_ name: String) -> (MembershipEvent) -> Bool {
    { if case .left(let m) = $0 { return m.name == name }; return false }
}
func isSuspected(_ name: String) -> (MembershipEvent) -> Bool {
    { if case .suspected(let m) = $0 { return m.name == name }; return false }
}
