import Cohort
import NIOCore
import Testing
@testable import CohortSessions

/// A member for pure tests; lower `n` = older.
func testMember(_ n: UInt64) -> Member {
    Member(id: MemberID(high: 0, low: n), name: "n\(n)", endpoint: Endpoint(host: "127.0.0.1", port: Int(n)), startTime: Int64(n))
}

/// Pure tests of the all-copies store: changes, expiry and the state transfer.
@Suite struct AllCopiesStateTests {
    typealias State = AllCopiesState<MapEntry>
    let me = testMember(50)
    let old = testMember(1)
    let older = testMember(0)
    let young = testMember(90)

    func put(_ value: String?, counter: UInt64, origin: UInt64 = 7, expiresAt: WallMillis? = nil) -> MapEntry.Delta {
        MapEntry.Delta(stamp: Stamp(counter: counter, origin: origin), value: value.map { ByteBuffer(string: $0) }, expiresAt: expiresAt)
    }

    func entry(_ value: String, counter: UInt64) -> MapEntry {
        MapEntry(value: ByteBuffer(string: value), stamp: Stamp(counter: counter, origin: 7), expiresAt: nil)
    }

    func requests(_ actions: [State.Action]) -> [(MemberID, UInt64)] {
        actions.compactMap { if case .requestTransfer(let m, let r) = $0 { return (m, r) } else { return nil } }
    }

    func becameReady(_ actions: [State.Action]) -> Bool {
        actions.contains { if case .becameReady = $0 { return true } else { return false } }
    }

    func settings(settle: Int64 = 100) -> State.Settings { State.Settings(settle: settle, stallTimeout: 1_000, tombstoneRetention: 10_000) }

    func value(_ state: State, _ key: String) -> String? {
        state.live(key, now: 0).map { String(buffer: $0.value) }
    }

    @Test func aloneIsReadyAfterSettle() {
        var state = State(local: me.id, settings: settings())
        #expect(!becameReady(state.onStart(members: [], now: 0)))
        #expect(!becameReady(state.onTick(now: 99)))
        #expect(becameReady(state.onTick(now: 100)))
        #expect(state.isReady)
    }

    @Test func asksTheOldestMemberFirst() {
        var state = State(local: me.id, settings: settings())
        let actions = state.onStart(members: [young, old, older], now: 0)
        #expect(requests(actions).map(\.0) == [older.id])
        #expect(state.phase == .transferring(source: older.id, request: 1))
    }

    @Test func transferMergesBatchesAndBuffersOrphans() {
        var state = State(local: me.id, settings: settings())
        _ = state.onStart(members: [old], now: 0)
        // A change for "k2" arrives before its batch: kept, then applied on top of the copy.
        _ = state.onRemoteDelta("k2", put("new", counter: 5), now: 1)
        // A change for "k1" that is older than the copy in the batch: harmless.
        _ = state.onRemoteDelta("k1", put("stale", counter: 1), now: 1)
        _ = state.onTransferBatch(from: old.id, request: 1, entries: ["k1": entry("v1", counter: 3)], last: false, sourceReady: true, now: 2)
        #expect(!state.isReady)
        let actions = state.onTransferBatch(from: old.id, request: 1, entries: ["k2": entry("v2", counter: 4)], last: true, sourceReady: true, now: 3)
        #expect(becameReady(actions))
        #expect(value(state, "k1") == "v1")
        #expect(value(state, "k2") == "new")
        // Only the source is covered: the source's view is no proof of having its members' changes.
        #expect(state.covered == [old.id])
    }

    @Test func changesOfKeysThatNeverArriveAreDroppedAtReady() {
        var state = State(local: me.id, settings: settings())
        _ = state.onStart(members: [old], now: 0)
        _ = state.onRemoteDelta("ghost", put(nil, counter: 9).with(value: "x"), now: 1)
        let actions = state.onTransferBatch(from: old.id, request: 1, entries: [:], last: true, sourceReady: true, now: 2)
        #expect(becameReady(actions))
        // A map put creates the key, so it is not an orphan: check with a non-creating session delta instead.
        var sessions = AllCopiesState<SessionRecord>(local: me.id, settings: .init(settle: 0))
        _ = sessions.onStart(members: [old], now: 0)
        var access = SessionDelta(sessionID: "s", stamp: Stamp(counter: 2, origin: 1))
        access.lastAccessedTime = 5
        _ = sessions.onRemoteDelta("s", access, now: 1)
        #expect(sessions.orphans["s"]?.count == 1)
        let done = sessions.onTransferBatch(from: old.id, request: 1, entries: [:], last: true, sourceReady: true, now: 2)
        #expect(done.contains { if case .droppedOrphans(1) = $0 { return true } else { return false } })
        #expect(sessions.orphans.isEmpty)
    }

    @Test func sourceThatLeavesIsReplaced() {
        var state = State(local: me.id, settings: settings())
        _ = state.onStart(members: [old, older], now: 0)
        _ = state.onTransferBatch(from: older.id, request: 1, entries: ["a": entry("1", counter: 1)], last: false, sourceReady: true, now: 1)
        let actions = state.onMemberRemoved(older.id, now: 2)
        #expect(requests(actions).map(\.0) == [old.id])
        // A late batch of the abandoned transfer is merged but does not finish the new one.
        let late = state.onTransferBatch(from: older.id, request: 1, entries: [:], last: true, sourceReady: true, now: 3)
        #expect(!becameReady(late))
        #expect(becameReady(state.onTransferBatch(from: old.id, request: 2, entries: [:], last: true, sourceReady: true, now: 4)))
        #expect(value(state, "a") == "1")
    }

    @Test func stalledTransferMovesOn() {
        var state = State(local: me.id, settings: settings())
        _ = state.onStart(members: [old, older], now: 0)
        #expect(requests(state.onTick(now: 999)).isEmpty)
        #expect(requests(state.onTick(now: 1_000)).map(\.0) == [old.id])
    }

    @Test func failedRequestMovesOn() {
        var state = State(local: me.id, settings: settings())
        _ = state.onStart(members: [old, older], now: 0)
        #expect(requests(state.onTransferRequestFailed(to: older.id, request: 1, now: 1)).map(\.0) == [old.id])
    }

    /// Tomcat drops GET_ALL while in its own transfer, so two nodes starting together wait
    /// 60 s on each other. Here a starting node answers at once and says it is not ready.
    @Test func twoStartingNodesDoNotWaitOnEachOther() {
        var first = State(local: old.id, settings: settings(settle: 100))
        var second = State(local: young.id, settings: settings(settle: 100))
        let r1 = first.onStart(members: [young], now: 0)
        let r2 = second.onStart(members: [old], now: 0)
        #expect(requests(r1).map(\.0) == [young.id])
        #expect(requests(r2).map(\.0) == [old.id])
        // Each serves the other's request immediately, not ready.
        let served1 = first.onTransferRequest(from: young.id, request: 1)
        let served2 = second.onTransferRequest(from: old.id, request: 1)
        for served in [served1, served2] {
            guard case .serveTransfer(_, _, _, let ready) = served.first else {
                Issue.record("a starting node must answer a transfer request")
                return
            }
            #expect(!ready)
        }
        _ = first.onTransferBatch(from: young.id, request: 1, entries: [:], last: true, sourceReady: false, now: 5)
        _ = second.onTransferBatch(from: old.id, request: 1, entries: [:], last: true, sourceReady: false, now: 5)
        #expect(becameReady(first.onTick(now: 100)))
        #expect(becameReady(second.onTick(now: 100)))
    }

    @Test func requestFromUnknownMemberWaitsForIt() {
        var state = State(local: me.id, settings: settings())
        _ = state.onStart(members: [], now: 0)
        #expect(state.onTransferRequest(from: young.id, request: 4).isEmpty)
        let actions = state.onMemberAdded(young, now: 1)
        #expect(actions.contains { if case .serveTransfer(young.id, 4, _, _) = $0 { return true } else { return false } })
    }

    @Test func readyNodePullsFromUncoveredMembers() {
        var state = State(local: me.id, settings: settings(settle: 0))
        _ = state.onStart(members: [old], now: 0)
        _ = state.onTransferBatch(from: old.id, request: 1, entries: [:], last: true, sourceReady: true, now: 1)
        #expect(state.isReady)
        // A member that leaves is no longer covered: whatever it wrote while away (a freeze, a
        // partition) is pulled when it returns, and it gets this node's digest to pull from.
        #expect(requests(state.onMemberRemoved(old.id, now: 2)).isEmpty)
        #expect(!state.covered.contains(old.id))
        let back = state.onMemberAdded(old, now: 2)
        #expect(requests(back).map(\.0) == [old.id])
        #expect(digests(back).map(\.0) == [old.id])
        let pulls = requests(state.onMemberAdded(older, now: 2))
        #expect(pulls.map(\.0) == [older.id])
        #expect(requests(state.onMemberRemoved(older.id, now: 3)).isEmpty)
        #expect(requests(state.onMemberAdded(older, now: 3)).map(\.0) == [older.id])
    }

    func digests(_ actions: [State.Action]) -> [(MemberID, [String: DigestItem], Bool)] {
        actions.compactMap { if case .sendDigest(let m, let items, let reply) = $0 { return (m, items, reply) } else { return nil } }
    }

    /// The race behind a joiner that missed a change: `young` changed `k` while it did not know
    /// the joiner yet, so the change went only to `old`, which applied it after taking the
    /// joiner's snapshot. The joiner must not be ready on `old`'s copy alone: it pulls from
    /// `young` (whose copy is taken once the joiner is in its view) and is ready after merging it.
    @Test func joinerPullsFromEveryMemberBeforeItIsReady() {
        var state = State(local: me.id, settings: settings())
        let start = state.onStart(members: [young, old], now: 0)
        #expect(requests(start).map(\.0) == [old.id])
        // old's snapshot, taken before young's change of k reached old.
        let afterSource = state.onTransferBatch(from: old.id, request: 1, entries: ["k": entry("v1", counter: 1)], last: true, sourceReady: true, now: 1)
        #expect(!becameReady(afterSource))
        #expect(!state.isReady)
        #expect(state.phase == .catchingUp)
        let pull = requests(afterSource)
        #expect(pull.map(\.0) == [young.id])
        let done = state.onTransferBatch(from: young.id, request: pull[0].1, entries: ["k": entry("v2", counter: 2)], last: true, sourceReady: true, now: 2)
        #expect(becameReady(done))
        #expect(value(state, "k") == "v2")
        #expect(state.covered == [old.id, young.id])
    }

    @Test func catchingUpEndsWhenAPulledMemberLeavesFailsOrStalls() {
        // Leaves.
        var leaving = State(local: me.id, settings: settings())
        _ = leaving.onStart(members: [young, old], now: 0)
        _ = leaving.onTransferBatch(from: old.id, request: 1, entries: [:], last: true, sourceReady: true, now: 1)
        #expect(becameReady(leaving.onMemberRemoved(young.id, now: 2)))
        // The pull cannot be delivered.
        var failing = State(local: me.id, settings: settings())
        _ = failing.onStart(members: [young, old], now: 0)
        let pull = requests(failing.onTransferBatch(from: old.id, request: 1, entries: [:], last: true, sourceReady: true, now: 1))
        #expect(becameReady(failing.onTransferRequestFailed(to: young.id, request: pull[0].1, now: 2)))
        #expect(!failing.covered.contains(young.id))
        // No answer for the stall timeout.
        var stalled = State(local: me.id, settings: settings())
        _ = stalled.onStart(members: [young, old], now: 0)
        _ = stalled.onTransferBatch(from: old.id, request: 1, entries: [:], last: true, sourceReady: true, now: 1)
        #expect(!becameReady(stalled.onTick(now: 1_000)))
        #expect(becameReady(stalled.onTick(now: 1_001)))
    }

    @Test func tombstoneBlocksLateCopiesButNotNewerWrites() {
        var state = State(local: me.id, settings: settings(settle: 0))
        _ = state.onStart(members: [], now: 0)
        _ = state.onRemoteDelta("k", put("v", counter: 1), now: 0)
        _ = state.onRemoteDelta("k", put(nil, counter: 2), now: 0)
        _ = state.merge(["k": entry("old", counter: 1)], now: 0)
        _ = state.onRemoteDelta("k", put("late", counter: 2, origin: 1), now: 0)
        #expect(value(state, "k") == nil)
        _ = state.onRemoteDelta("k", put("again", counter: 3), now: 0)
        #expect(value(state, "k") == "again")
    }

    @Test func sweepExpiresAndForgetsTombstones() {
        var state = State(local: me.id, settings: settings(settle: 0))
        _ = state.onStart(members: [], now: 0)
        _ = state.onRemoteDelta("k", put("v", counter: 1, expiresAt: 500), now: 0)
        #expect(state.live("k", now: 499) != nil)
        #expect(state.live("k", now: 500) == nil)
        let actions = state.onTick(now: 500)
        #expect(actions.contains { if case .event(.removed("k", _, .expired, .local)) = $0 { return true } else { return false } })
        #expect(state.tombstones["k"] != nil)
        _ = state.onTick(now: 10_501)
        #expect(state.tombstones["k"] == nil)
    }

    @Test func localChangeOfMissingKeyFails() {
        var sessions = AllCopiesState<SessionRecord>(local: me.id, settings: .init(settle: 0))
        _ = sessions.onStart(members: [], now: 0)
        var access = SessionDelta(sessionID: "s")
        access.stamp = sessions.nextStamp(for: "s")
        access.lastAccessedTime = 1
        guard case .failure(.notFound) = sessions.onLocalDelta("s", access, now: 0) else {
            Issue.record("a change of a missing session must fail")
            return
        }
    }
}

extension MapEntry.Delta {
    func with(value: String) -> MapEntry.Delta {
        var copy = self
        copy.value = ByteBuffer(string: value)
        return copy
    }
}
