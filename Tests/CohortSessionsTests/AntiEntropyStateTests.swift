import Cohort
import NIOCore
import Testing
@testable import CohortSessions

/// Pure tests of anti-entropy, stale-write conflicts and stamp reservation in the all-copies
/// store (`AllCopiesState+AntiEntropy.swift`).
@Suite struct AntiEntropyStateTests {
    typealias State = AllCopiesState<MapEntry>
    let a = testMember(1)
    let b = testMember(2)

    func ready(_ local: Member, with other: Member) -> State {
        var state = State(local: local.id, settings: .init(settle: 0, stallTimeout: 1_000, tombstoneRetention: 10_000, antiEntropyInterval: 1_000))
        _ = state.onStart(members: [other], now: 0)
        _ = state.onTransferBatch(from: other.id, request: 1, entries: [:], last: true, sourceReady: true, now: 0)
        #expect(state.isReady)
        return state
    }

    func put(_ value: String?, counter: UInt64, origin: UInt64) -> MapEntry.Delta {
        MapEntry.Delta(stamp: Stamp(counter: counter, origin: origin), value: value.map { ByteBuffer(string: $0) }, expiresAt: nil)
    }

    func value(_ state: State, _ key: String) -> String? {
        state.live(key, now: 0).map { String(buffer: $0.value) }
    }

    /// Runs one full exchange: `from` sends its digest to `to`; every pull, reply digest and
    /// keys reply is delivered until nothing is left. Returns the events both sides published.
    @discardableResult
    func exchange(_ from: inout State, _ to: inout State) -> [ReplicaEvent<MapEntry>] {
        var events: [ReplicaEvent<MapEntry>] = []
        var inbox: [(toFirst: Bool, action: State.Action)] = [(false, .sendDigest(to: to.local, items: from.digest(), reply: false))]
        var rounds = 0
        while !inbox.isEmpty, rounds < 100 {
            rounds += 1
            let (toFirst, action) = inbox.removeFirst()
            // `toFirst`: the action was produced by `to` and is for `from`.
            var produced: [State.Action] = []
            switch action {
            case .sendDigest(_, let items, let reply):
                if toFirst {
                    produced = from.onDigest(from: to.local, items: items, reply: reply, after: nil, through: nil)
                } else {
                    produced = to.onDigest(from: from.local, items: items, reply: reply, after: nil, through: nil)
                }
                inbox += produced.map { (!toFirst, $0) }
            case .requestKeys(_, let request, let keys):
                // Produced by the side that wants the keys; served by the other.
                let served = toFirst ? from.onKeysRequest(from: to.local, request: request, keys: keys) : to.onKeysRequest(from: from.local, request: request, keys: keys)
                inbox += served.map { (!toFirst, $0) }
            case .serveKeys(_, let request, let entries, let deleted):
                if toFirst {
                    produced = from.onKeysReply(from: to.local, request: request, entries: entries, deleted: deleted, now: 5)
                } else {
                    produced = to.onKeysReply(from: from.local, request: request, entries: entries, deleted: deleted, now: 5)
                }
            default:
                break
            }
            for case .event(let event) in produced { events.append(event) }
        }
        #expect(inbox.isEmpty, "the exchange did not end")
        return events
    }

    /// The issue's reproduction at the state level: while B was away, A created five keys and B
    /// deleted one A did not know was gone; one exchange later both hold the same.
    @Test func oneExchangeReconcilesBothSides() {
        var stateA = ready(a, with: b)
        var stateB = ready(b, with: a)
        _ = stateA.onRemoteDelta("shared", put("v1", counter: 1, origin: 9), now: 1)
        _ = stateB.onRemoteDelta("shared", put("v1", counter: 1, origin: 9), now: 1)
        _ = stateA.onRemoteDelta("gone", put("x", counter: 1, origin: 9), now: 1)
        _ = stateB.onRemoteDelta("gone", put("x", counter: 1, origin: 9), now: 1)
        for n in 1...5 { _ = stateA.onRemoteDelta("s\(n)", put("n\(n)", counter: 1, origin: 3), now: 2) }
        _ = stateB.onRemoteDelta("gone", put(nil, counter: 2, origin: 4), now: 2)
        _ = stateB.onRemoteDelta("onlyB", put("b", counter: 1, origin: 4), now: 2)

        exchange(&stateA, &stateB)
        for n in 1...5 { #expect(value(stateB, "s\(n)") == "n\(n)") }
        #expect(value(stateA, "onlyB") == "b")
        #expect(value(stateA, "gone") == nil)
        #expect(stateA.tombstones["gone"] != nil)
        #expect(stateA.digest() == stateB.digest())
        // Nothing left to do: a second exchange moves nothing.
        let events = exchange(&stateB, &stateA)
        #expect(events.isEmpty)
    }

    @Test func sameVersionWritesOnBothSidesAreAConflictResolvedByOrigin() {
        var stateA = ready(a, with: b)
        var stateB = ready(b, with: a)
        _ = stateA.onRemoteDelta("k", put("base", counter: 1, origin: 9), now: 1)
        _ = stateB.onRemoteDelta("k", put("base", counter: 1, origin: 9), now: 1)
        // Both sides write k from version 1, each not seeing the other.
        _ = stateA.onRemoteDelta("k", put("from a", counter: 2, origin: 10), now: 2)
        _ = stateB.onRemoteDelta("k", put("from b", counter: 2, origin: 20), now: 2)
        let events = exchange(&stateA, &stateB)
        // The higher origin wins on both nodes; each side that lost reports the conflict.
        #expect(value(stateA, "k") == "from b")
        #expect(value(stateB, "k") == "from b")
        let conflicts = events.compactMap { if case .conflict(let key, let fields, _) = $0 { return (key, fields) } else { return nil } }
        #expect(conflicts.count >= 1)
        #expect(conflicts.allSatisfy { $0.0 == "k" && $0.1 == ["value"] })
    }

    @Test func aChangeFromABehindCopyIsAConflictButNotADuplicateOrTheWritersOwn() {
        var state = ready(a, with: b)
        _ = state.onRemoteDelta("k", put("v1", counter: 1, origin: 9), now: 1)
        _ = state.onRemoteDelta("k", put("v2", counter: 2, origin: 8), now: 1)
        let held = Stamp(counter: 2, origin: 8)
        // Computed from v1 by another writer: refused, naming the newer stamp.
        #expect(state.conflict("k", put("stale", counter: 2, origin: 7), base: Stamp(counter: 1, origin: 9)) == held)
        // Computed from the newest copy: accepted.
        #expect(state.conflict("k", put("fresh", counter: 3, origin: 7), base: held) == nil)
        // The change this node holds already (a duplicate), or a later one by the same writer.
        #expect(state.conflict("k", put("v2", counter: 2, origin: 8), base: Stamp(counter: 1, origin: 9)) == nil)
        #expect(state.conflict("k", put("v3", counter: 3, origin: 8), base: Stamp(counter: 1, origin: 9)) == nil)
        // A writer that does not say what it read is not judged.
        #expect(state.conflict("k", put("old", counter: 2, origin: 7), base: nil) == nil)
        // A deletion newer than the writer's copy is a conflict too.
        _ = state.onRemoteDelta("k", put(nil, counter: 3, origin: 8), now: 2)
        #expect(state.conflict("k", put("late", counter: 3, origin: 7), base: held) == Stamp(counter: 3, origin: 8))
    }

    @Test func issuedStampsAreNotReusedBeforeTheyAreApplied() {
        var state = ready(a, with: b)
        let first = state.issueStamp(for: "k")
        let second = state.issueStamp(for: "k")
        #expect(second.counter == first.counter + 1)
        // Applied: the reservation goes with the next sweep.
        _ = state.onLocalDelta("k", MapEntry.Delta(stamp: second, value: ByteBuffer(string: "v"), expiresAt: nil), now: 1)
        _ = state.sweep(now: 2)
        #expect(state.issued["k"] == nil)
        #expect(state.issueStamp(for: "k").counter == second.counter + 1)
    }

    @Test func periodicDigestGoesToOneMemberAfterAnother() {
        let c = testMember(3)
        var state = ready(a, with: b)
        _ = state.onMemberAdded(c, now: 0)
        #expect(state.onTick(now: 10).isEmpty)
        var targets: [MemberID] = []
        for round in 1...4 {
            for case .sendDigest(let member, _, let reply) in state.onTick(now: 10 + Int64(round) * 1_000) {
                #expect(!reply)
                targets.append(member)
            }
        }
        #expect(targets.count == 4)
        #expect(Set(targets) == [b.id, c.id])
        #expect(targets[0] != targets[1])
    }

    @Test func keysRepliesNobodyAskedForAreRefused() {
        var state = ready(a, with: b)
        let actions = state.onKeysReply(from: b.id, request: 99, entries: ["k": MapEntry(value: ByteBuffer(string: "x"), stamp: Stamp(counter: 1, origin: 1), expiresAt: nil)], deleted: [:], now: 1)
        #expect(actions.contains { if case .refused = $0 { return true } else { return false } })
        #expect(value(state, "k") == nil)
    }

    @Test func aDigestFromAStrangerOrWhileStartingPullsNothing() {
        var state = ready(a, with: b)
        let stranger = testMember(77)
        #expect(state.onDigest(from: stranger.id, items: ["k": DigestItem(stamp: Stamp(counter: 1, origin: 1), fingerprint: 1, deleted: false)], reply: false, after: nil, through: nil).isEmpty)
        var starting = State(local: a.id)
        _ = starting.onStart(members: [b], now: 0)
        #expect(starting.onDigest(from: b.id, items: ["k": DigestItem(stamp: Stamp(counter: 1, origin: 1), fingerprint: 1, deleted: false)], reply: false, after: nil, through: nil).isEmpty)
    }
}
