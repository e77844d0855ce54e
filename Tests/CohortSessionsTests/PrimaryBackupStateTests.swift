import Cohort
import NIOCore
import Testing
@testable import CohortSessions

/// Pure tests of the primary/backup store: placement, failover, re-backup, fetch, start-up.
@Suite struct PrimaryBackupStateTests {
    typealias State = PrimaryBackupState<MapEntry>
    let a = testMember(1)
    let b = testMember(2)
    let c = testMember(3)
    let d = testMember(4)

    func state(_ me: Member, members: [Member], backups: Int = 1) -> State {
        var state = State(local: me.id, settings: .init(backups: backups, settle: 0, tombstoneRetention: 10_000))
        _ = state.onStart(members: members, now: 0)
        return state
    }

    func put(_ value: String, counter: UInt64 = 1, expiresAt: WallMillis? = nil) -> MapEntry.Delta {
        MapEntry.Delta(stamp: Stamp(counter: counter, origin: 1), value: ByteBuffer(string: value), expiresAt: expiresAt)
    }

    func stores(_ actions: [State.Action]) -> [(String, Location, [MemberID])] {
        actions.compactMap { if case .store(let key, _, let location, let to) = $0 { return (key, location, to) } else { return nil } }
    }

    func locates(_ actions: [State.Action]) -> [String: Location] {
        var result: [String: Location] = [:]
        for action in actions { if case .locate(let update, _) = action { result.merge(update) { $1 } } }
        return result
    }

    @Test func rendezvousIsStableAndMovesOnlyTheLeaversKeys() {
        let members = [a, b, c, d].map(\.id)
        let keys = (0..<200).map { "key\($0)" }
        let before = Dictionary(uniqueKeysWithValues: keys.map { ($0, Rendezvous.rank($0, among: members).first!) })
        #expect(before == Dictionary(uniqueKeysWithValues: keys.map { ($0, Rendezvous.rank($0, among: members.reversed()).first!) }))
        let without = members.filter { $0 != c.id }
        for key in keys {
            let after = Rendezvous.rank(key, among: without).first!
            if before[key] != c.id { #expect(after == before[key], "\(key) moved although its node stayed") }
        }
        let spread = Set(before.values)
        #expect(spread.count == 4, "every member gets keys")
    }

    @Test func createPlacesBackupsAndTellsEveryone() throws {
        var owner = state(a, members: [b, c, d], backups: 2)
        let actions = try owner.onLocalCommit("k", put("v"), mustCreate: true, now: 0).get()
        let (key, location, to) = try #require(stores(actions).first)
        #expect(key == "k")
        #expect(location.owner == a.id)
        #expect(location.backups.count == 2)
        #expect(to == location.backups)
        #expect(location.backups == Rendezvous.rank("k", among: [b, c, d].map(\.id)).prefix(2).map { $0 })
        #expect(locates(actions)["k"] == location)
        #expect(owner.ownedCount == 1)
        guard case .failure(.exists) = owner.onLocalCommit("k", put("w", counter: 2), mustCreate: true, now: 0) else {
            Issue.record("a second create must fail")
            return
        }
    }

    @Test func aNonOwnerMustTakeOwnershipFirst() throws {
        var owner = state(a, members: [b, c])
        let created = try owner.onLocalCommit("k", put("v"), mustCreate: false, now: 0).get()
        let location = try #require(locates(created)["k"])
        var other = state(c, members: [a, b])
        _ = other.onLocate(["k": location], now: 0)
        guard case .failure(.notOwner(location)) = other.onLocalCommit("k", put("w", counter: 2), mustCreate: false, now: 0) else {
            Issue.record("a change on a proxy must ask for ownership")
            return
        }
        // The owner hands it over: it keeps a copy as backup and tells the others.
        let handover = owner.onFetchRequest("k", from: c.id, request: 9, take: true, now: 0)
        guard case .reply(c.id, 9, "k", let entry?, let moved?) = handover.first else {
            Issue.record("the owner must reply with the entry and the new location")
            return
        }
        #expect(moved.owner == c.id)
        #expect(moved.backups == [a.id])
        #expect(owner.ownedCount == 0)
        _ = other.onFetchReply("k", entry: entry, location: moved, now: 0)
        #expect(other.ownedCount == 1)
        let changed = try other.onLocalCommit("k", put("w", counter: 2), mustCreate: false, now: 0).get()
        #expect(changed.contains { if case .update("k", _, [a.id]) = $0 { return true } else { return false } })
    }

    @Test func ownerLossPromotesTheFirstBackupWhichRebacksUp() throws {
        var owner = state(a, members: [b, c, d])
        let created = try owner.onLocalCommit("k", put("v"), mustCreate: false, now: 0).get()
        let (_, location, _) = try #require(stores(created).first)
        let heirMember = try #require([b, c, d].first { $0.id == location.backups[0] })
        var heir = state(heirMember, members: [a, b, c, d].filter { $0 != heirMember })
        _ = heir.onStore("k", entry: MapEntry.creating(from: put("v"))!, location: location, now: 0)
        let actions = heir.onMemberRemoved(a.id, now: 1)
        let newLocation = try #require(locates(actions)["k"])
        #expect(newLocation.owner == heirMember.id)
        #expect(newLocation.backups.count == 1 && newLocation.backups[0] != a.id && newLocation.backups[0] != heirMember.id)
        #expect(newLocation.stamp > location.stamp)
        #expect(stores(actions).first?.2 == newLocation.backups)
        #expect(heir.ownedCount == 1)
        // A bystander computes the same heir before the announcement arrives.
        let bystanderMember = try #require([b, c, d].first { $0 != heirMember })
        var bystander = state(bystanderMember, members: [a, b, c, d].filter { $0 != bystanderMember })
        _ = bystander.onLocate(["k": location], now: 0)
        _ = bystander.onMemberRemoved(a.id, now: 1)
        #expect(bystander.locations["k"]?.owner == heirMember.id)
        _ = bystander.onLocate(["k": newLocation], now: 2)
        #expect(bystander.locations["k"] == newLocation)
    }

    @Test func backupLossIsReplacedAndAllHoldersLostMeansLost() throws {
        var owner = state(a, members: [b, c])
        let created = try owner.onLocalCommit("k", put("v"), mustCreate: false, now: 0).get()
        let (_, location, _) = try #require(stores(created).first)
        let actions = owner.onMemberRemoved(location.backups[0], now: 1)
        let spare = [b, c].map(\.id).first { $0 != location.backups[0] }!
        #expect(stores(actions).first?.2 == [spare])
        #expect(locates(actions)["k"]?.backups == [spare])
        // A proxy that sees owner and backup die loses the key.
        var proxy = state(d, members: [a, b, c])
        _ = proxy.onLocate(["k": Location(owner: a.id, backups: [b.id], stamp: Stamp(counter: 1, origin: 1))], now: 0)
        _ = proxy.onMemberRemoved(a.id, now: 1)
        let lost = proxy.onMemberRemoved(b.id, now: 1)
        #expect(proxy.locations["k"] == nil)
        #expect(lost.contains { if case .dropped(lost: 1, _) = $0 { return true } else { return false } })
    }

    @Test func staleLocationsAndLateCopiesAreIgnored() {
        var node = state(b, members: [a, c])
        let newer = Location(owner: c.id, backups: [b.id], stamp: Stamp(counter: 3, origin: 1))
        let older = Location(owner: a.id, backups: [b.id], stamp: Stamp(counter: 2, origin: 1))
        _ = node.onLocate(["k": newer], now: 0)
        _ = node.onLocate(["k": older], now: 0)
        #expect(node.locations["k"] == newer)
        _ = node.onStore("k", entry: MapEntry.creating(from: put("old"))!, location: older, now: 0)
        #expect(node.copies["k"] == nil)
        _ = node.onRemoveLocations(["k": Stamp(counter: 4, origin: 1)], reason: .removed, now: 0)
        _ = node.onLocate(["k": newer], now: 0)
        #expect(node.locations["k"] == nil, "a removed key must not come back through a late location")
    }

    @Test func startIsReadyOnceEveryMemberSentItsLocations() {
        var node = State(local: d.id, settings: .init(backups: 1, settle: 0))
        let actions = node.onStart(members: [a, b], now: 0)
        let requests = actions.compactMap { if case .requestLocations(let m, let r) = $0 { return (m, r) } else { return nil } }
        #expect(requests.count == 2)
        #expect(!node.isReady)
        _ = node.onLocationsBatch(from: a.id, request: requests.first { $0.0 == a.id }!.1, locations: [:], last: true, now: 1)
        #expect(!node.isReady)
        let done = node.onLocationsRequestFailed(to: b.id, request: requests.first { $0.0 == b.id }!.1, now: 2)
        #expect(done.contains { if case .becameReady = $0 { return true } else { return false } })
    }

    @Test func onlyTheOwnerExpiresAndAnnouncesInOneMessage() throws {
        var owner = state(a, members: [b])
        for i in 0..<5 { _ = try owner.onLocalCommit("k\(i)", put("v", expiresAt: 100), mustCreate: false, now: 0).get() }
        let actions = owner.onTick(now: 100)
        let removals = actions.compactMap { if case .removeLocations(let keys, .expired, _) = $0 { return keys } else { return nil } }
        #expect(removals.count == 1)
        #expect(removals.first?.count == 5)
        #expect(owner.ownedCount == 0)
    }

    /// A backup that holds changes made after the key was promoted elsewhere refuses a change
    /// from an owner that did not see them (it was frozen): same or older stamp counter from
    /// another writer. The owner's own next change, a duplicate, and a fetch reply placing the
    /// key elsewhere are handled as before; a node the new placement leaves out drops its copy.
    @Test func aChangeFromAStaleOwnerIsRefusedAndTheStaleCopyDropped() throws {
        var backup = state(b, members: [a, c])
        let location = Location(owner: a.id, backups: [b.id], stamp: Stamp(counter: 1, origin: 1))
        _ = backup.onStore("k", entry: MapEntry(value: ByteBuffer(string: "v1"), stamp: Stamp(counter: 1, origin: 1), expiresAt: nil), location: location, now: 0)
        // Written by c after a promotion this node saw: stamp counter 5, origin 3.
        _ = backup.onUpdate("k", delta: MapEntry.Delta(stamp: Stamp(counter: 5, origin: 3), value: ByteBuffer(string: "v5"), expiresAt: nil), now: 1)
        // The old owner resumes and writes from its copy at version 1: counter 2, origin 1.
        #expect(backup.staleChange("k", MapEntry.Delta(stamp: Stamp(counter: 2, origin: 1), value: ByteBuffer(string: "stale"), expiresAt: nil)) == Stamp(counter: 5, origin: 3))
        #expect(backup.staleChange("k", MapEntry.Delta(stamp: Stamp(counter: 5, origin: 1), value: ByteBuffer(string: "tie"), expiresAt: nil)) == Stamp(counter: 5, origin: 3))
        // A change newer than everything held, or the held change again, is not refused.
        #expect(backup.staleChange("k", MapEntry.Delta(stamp: Stamp(counter: 6, origin: 1), value: ByteBuffer(string: "new"), expiresAt: nil)) == nil)
        #expect(backup.staleChange("k", MapEntry.Delta(stamp: Stamp(counter: 5, origin: 3), value: ByteBuffer(string: "v5"), expiresAt: nil)) == nil)
        #expect(backup.staleChange("missing", put("x")) == nil)

        // The stale owner learns the newer placement (c owns, a backs up... b is out): it drops
        // its copy instead of serving it.
        var stale = state(b, members: [a, c])
        _ = stale.onStore("k", entry: MapEntry(value: ByteBuffer(string: "v1"), stamp: Stamp(counter: 1, origin: 1), expiresAt: nil), location: location, now: 0)
        #expect(stale.live("k", now: 2) != nil)
        _ = stale.onFetchReply("k", entry: nil, location: Location(owner: c.id, backups: [a.id], stamp: Stamp(counter: 4, origin: 3)), now: 2)
        #expect(stale.live("k", now: 2) == nil)
        #expect(stale.locations["k"]?.owner == c.id)
    }
}
