import CohortCore
import FuzzSupport
import NIOCore

/// Fuzz target `states`: sequences of inputs, as hostile members could cause them, fed to the
/// state machines that take remote input — `MembershipState`, `AllCopiesState` and
/// `PrimaryBackupState` (with session records as entries) — with their invariants checked after
/// every step. The first byte picks the machine; every following group of bytes is one input.
///
/// Values are drawn from what the decoders let through (stamps up to `Stamp.maxCounter`, wall
/// times within `ReceivedTime.maxWallMillis`, any idle limit), from small pools of members and
/// keys so that inputs meet, and time moves forward by the inputs.
public enum FuzzStates {
    public static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        switch input.below(3) {
        case 0: runMembership(&input)
        case 1: runAllCopies(&input)
        default: runPrimaryBackup(&input)
        }
    }

    // MARK: - pools

    static let ids = (0..<6).map { MemberID(high: 0x1000 + UInt64($0), low: 0x8000_0000_0000_0000 | UInt64($0)) }
    static let endpoints = (0..<5).map { Endpoint(host: "10.0.0.\($0 + 1)", port: 4000 + $0) }
    static let keys = ["a", "b", "c", "d"]
    static let localID = MemberID(high: 0xFFFF, low: 0xFFFF)
    static let local = Member(id: localID, name: "local", endpoint: Endpoint(host: "10.0.0.99", port: 4099), startTime: 10)

    static func member(_ input: inout FuzzInput) -> Member {
        let index = input.below(ids.count + 1)
        let id = index == ids.count ? localID : ids[index]
        let endpoint = input.below(8) == 0 ? local.endpoint : endpoints[input.below(endpoints.count)]
        return Member(id: id, name: "m\(index)", endpoint: endpoint, domain: input.below(8) == 0 ? "other" : "default", startTime: Int64(input.below(4)))
    }

    static func remoteID(_ input: inout FuzzInput) -> MemberID { ids[input.below(ids.count)] }

    static func stamp(_ input: inout FuzzInput) -> Stamp {
        Stamp(counter: min(input.interesting(), Stamp.maxCounter), origin: input.bool() ? Stamp.origin(of: remoteIDPick(&input)) : input.interesting())
    }

    static func remoteIDPick(_ input: inout FuzzInput) -> MemberID {
        let index = input.below(ids.count + 1)
        return index == ids.count ? localID : ids[index]
    }

    static func wall(_ input: inout FuzzInput, now: WallMillis) -> WallMillis {
        switch input.below(6) {
        case 0: return ReceivedTime.maxWallMillis
        case 1: return -ReceivedTime.maxWallMillis
        case 2: return 0
        default: return now + Int64(input.below(64)) * 1000 - 32_000
        }
    }

    static func delta(_ input: inout FuzzInput, key: String, now: WallMillis) -> SessionDelta {
        var delta = SessionDelta(sessionID: key, stamp: stamp(&input))
        let fields = input.byte()
        if fields & 1 != 0 { delta.creation = .init(creationTime: wall(&input, now: now)) }
        if fields & 2 != 0 { delta.lastAccessedTime = wall(&input, now: now) }
        if fields & 4 != 0 { delta.maxInactive = input.bool() ? Int64(bitPattern: input.interesting()) : Int64(input.below(120)) * 1000 }
        if fields & 8 != 0 { delta.absoluteExpiry = Change(value: input.bool() ? wall(&input, now: now) : nil) }
        if fields & 16 != 0 { delta.principal = Change(value: input.bool() ? "p\(input.below(3))" : nil) }
        if fields & 32 != 0 { delta.invalidated = true }
        if fields & 64 != 0 { delta.newID = keys[input.below(keys.count)] }
        if fields & 128 != 0 { delta.attributes["x\(input.below(3))"] = input.bool() ? ByteBuffer(bytes: [input.byte()]) : .some(nil) }
        return delta
    }

    static func record(_ input: inout FuzzInput, key: String, now: WallMillis) -> SessionRecord? {
        var delta = delta(&input, key: key, now: now)
        delta.creation = .init(creationTime: wall(&input, now: now))
        delta.invalidated = false
        delta.newID = nil
        return SessionRecord.creating(from: delta)
    }

    static func location(_ input: inout FuzzInput) -> Location {
        let owner = remoteIDPick(&input)
        var backups: [MemberID] = []
        for _ in 0..<input.below(3) {
            let backup = remoteIDPick(&input)
            if backup != owner, !backups.contains(backup) { backups.append(backup) }
        }
        return Location(owner: owner, backups: backups, stamp: stamp(&input))
    }

    static func advance(_ input: inout FuzzInput, _ now: inout WallMillis) {
        now += Int64(input.below(4)) * Int64(input.below(250)) * 100
    }

    // MARK: - membership

    static func runMembership(_ input: inout FuzzInput) {
        let settings = MembershipState.Settings(maxMembers: 3, maxCandidates: 4, tombstoneRetention: .seconds(3), maxTombstones: 3)
        var state = MembershipState(local: local, settings: settings)
        let start = ContinuousClock.now
        var elapsed = Duration.zero
        var addedSinceTick = 0
        var steps = 0
        while !input.isAtEnd, steps < 2000 {
            steps += 1
            let now = start.advanced(by: elapsed)
            let tombstonesBefore = state.tombstoneCount
            switch input.below(12) {
            case 0:
                var list: [Endpoint] = []
                for _ in 0..<input.below(6) { list.append(input.below(6) == 0 ? local.endpoint : endpoints[input.below(endpoints.count)]) }
                _ = state.onCandidates(list, now: now)
            case 1: _ = state.onAnnounced(member(&input), now: now)
            case 2: _ = state.onDiscoveryGone(remoteID(&input), now: now)
            case 3: _ = state.onHandshake(member(&input), at: endpoints[input.below(endpoints.count)], now: now)
            case 4: _ = state.onHandshakeFailed(endpoints[input.below(endpoints.count)], now: now)
            case 5: _ = state.onAccepted(member(&input), now: now)
            case 6: _ = state.onHeard(member(&input), now: now)
            case 7: state.onActivity(remoteID(&input), now: now)
            case 8: _ = state.onConnectionLost(remoteID(&input), reason: "fuzz", now: now)
            case 9: _ = input.bool() ? state.onLeft(remoteID(&input)) : state.onLeft(remoteID(&input), now: now)
            case 10: _ = state.onRemoved(remoteID(&input), now: now)
            default:
                elapsed += .milliseconds(Int64(input.below(16)) * 250)
                _ = state.onTick(now: start.advanced(by: elapsed))
                addedSinceTick = 0
                require(state.tombstoneCount <= settings.maxTombstones, "tombstones above the cap after a tick: \(state.tombstoneCount)")
                require(state.removedAddressCount <= settings.maxTombstones, "removal verdicts above the cap after a tick")
            }
            if state.tombstoneCount > tombstonesBefore { addedSinceTick += state.tombstoneCount - tombstonesBefore }
            let members = state.members
            require(members.count <= settings.maxMembers, "the view holds \(members.count) members, above the cap")
            require(!members.contains { $0.id == local.id }, "the local member is in its own view")
            require(members.allSatisfy { $0.domain == local.domain }, "a member of another domain is in the view")
            require(Set(members.map(\.endpoint)).count == members.count, "two members share an address")
            require(members.allSatisfy { !state.isTombstoned($0.id) }, "a member in the view is refused as departed")
            require(state.candidateCount <= settings.maxCandidates, "candidates above the cap")
            require(state.announcedCount <= settings.maxCandidates, "announced members above the cap")
            require(state.tombstoneCount <= settings.maxTombstones + addedSinceTick, "tombstones grow without bound")
            require(state.retiredIDs.count == state.tombstoneCount, "retired ids and tombstones disagree")
        }
    }

    // MARK: - all copies

    static func runAllCopies(_ input: inout FuzzInput) {
        var settings = AllCopiesState<SessionRecord>.Settings()
        settings.maxParked = 3
        settings.maxOrphans = 5
        settings.stallTimeout = 5_000
        settings.tombstoneRetention = 20_000
        var state = AllCopiesState<SessionRecord>(local: localID, settings: settings)
        var now: WallMillis = 1_700_000_000_000
        let remotes = ids.map { Member(id: $0, name: "r", endpoint: Endpoint(host: "10.1.0.1", port: 1), startTime: 1) }
        var view: [Member] = []
        _ = state.onStart(members: [], now: now)
        var steps = 0
        while !input.isAtEnd, steps < 2000 {
            steps += 1
            let key = keys[input.below(keys.count)]
            switch input.below(10) {
            case 0:
                let member = remotes[input.below(remotes.count)]
                if !view.contains(member) { view.append(member) }
                _ = state.onMemberAdded(member, now: now)
            case 1:
                let id = remoteID(&input)
                view.removeAll { $0.id == id }
                _ = state.onMemberRemoved(id, now: now)
            case 2:
                var change = delta(&input, key: key, now: now)
                change.stamp = state.nextStamp(for: key)
                _ = state.onLocalDelta(key, change, mustCreate: input.bool(), now: now)
            case 3:
                _ = state.onRemoteDelta(key, delta(&input, key: key, now: now), now: now)
            case 4:
                _ = state.onTransferRequest(from: remoteID(&input), request: UInt64(input.below(4)))
            case 5:
                var batch: [String: SessionRecord] = [:]
                for _ in 0..<input.below(3) {
                    let name = keys[input.below(keys.count)]
                    batch[name] = record(&input, key: name, now: now)
                }
                var request = UInt64(input.below(4))
                var source = remoteID(&input)
                // Often the batch the node waits for, so the solicited path is explored too.
                if input.bool(), case .transferring(let expected, let number) = state.phase { source = expected; request = number }
                _ = state.onTransferBatch(from: source, request: request, entries: batch, last: input.bool(), sourceReady: input.bool(), now: now)
            case 6:
                _ = state.onTransferRequestFailed(to: remoteID(&input), request: UInt64(input.below(4)), now: now)
            case 7:
                advance(&input, &now)
                _ = state.onTick(now: now)
            case 8:
                advance(&input, &now)
            default:
                _ = state.sweep(now: now)
            }
            checkAllCopies(state)
        }
    }

    static func checkAllCopies(_ state: AllCopiesState<SessionRecord>) {
        let memberIDs = Set(state.members.map(\.id))
        for (key, entry) in state.entries {
            require(state.tombstones[key] == nil, "key '\(key)' is both live and deleted")
            require(entry.latestStamp.counter <= Stamp.maxCounter && entry.version <= Stamp.maxCounter, "a stamp above the cap was stored")
            let next = state.nextStamp(for: key)
            require(next.counter > entry.version || next.counter == Stamp.maxCounter, "the next stamp of '\(key)' does not win over its version")
            _ = entry.deadline
        }
        require(state.orphanCount == state.orphans.values.reduce(0) { $0 + $1.count }, "the orphan count is off")
        require(state.orphanCount <= state.settings.maxOrphans, "orphans above the cap")
        require(!state.isReady || state.orphans.isEmpty, "a ready node keeps orphans")
        require(state.parked.count <= state.settings.maxParked, "parked requests above the cap")
        require(Set(state.pulls.values).isSubset(of: memberIDs), "a pull from a member not in the view")
        if case .transferring(let source, _) = state.phase {
            require(memberIDs.contains(source), "transferring from a member not in the view")
        }
    }

    // MARK: - primary/backup

    static func runPrimaryBackup(_ input: inout FuzzInput) {
        var settings = PrimaryBackupState<SessionRecord>.Settings()
        settings.backups = 1 + input.below(2)
        settings.maxParked = 3
        settings.settle = 1_000
        settings.tombstoneRetention = 20_000
        var state = PrimaryBackupState<SessionRecord>(local: localID, settings: settings)
        var now: WallMillis = 1_700_000_000_000
        let remotes = ids.map { Member(id: $0, name: "r", endpoint: Endpoint(host: "10.1.0.1", port: 1), startTime: 1) }
        _ = state.onStart(members: [], now: now)
        var steps = 0
        while !input.isAtEnd, steps < 2000 {
            steps += 1
            let key = keys[input.below(keys.count)]
            switch input.below(16) {
            case 0: _ = state.onMemberAdded(remotes[input.below(remotes.count)], now: now)
            case 1: _ = state.onMemberRemoved(remoteID(&input), now: now)
            case 2:
                var change = delta(&input, key: key, now: now)
                change.stamp = state.nextEntryStamp(for: key)
                _ = state.onLocalCommit(key, change, mustCreate: input.bool(), now: now)
            case 3:
                if let entry = record(&input, key: key, now: now) { _ = state.onStore(key, entry: entry, location: location(&input), now: now) }
            case 4: _ = state.onUpdate(key, delta: delta(&input, key: key, now: now), now: now)
            case 5: _ = state.onLocate([key: location(&input)], now: now)
            case 6: _ = state.onRemoveLocations([key: stamp(&input)], reason: input.bool() ? .removed : .expired, now: now)
            case 7: _ = state.onLocationsRequest(from: remoteID(&input), request: UInt64(input.below(4)), now: now)
            case 8:
                let member = remoteID(&input)
                let request = input.bool() ? (state.requested[member] ?? 0) : UInt64(input.below(4))
                _ = state.onLocationsBatch(from: member, request: request, locations: [key: location(&input)], last: input.bool(), now: now)
            case 9:
                let member = remoteID(&input)
                _ = state.onLocationsRequestFailed(to: member, request: input.bool() ? (state.requested[member] ?? 0) : 1, now: now)
            case 10: _ = state.onStoreFailed(to: remoteID(&input), now: now)
            case 11: _ = state.onFetchRequest(key, from: remoteID(&input), request: UInt64(input.below(4)), take: input.bool(), now: now)
            case 12:
                let entry = input.bool() ? record(&input, key: key, now: now) : nil
                _ = state.onFetchReply(key, entry: entry, location: input.bool() ? location(&input) : nil, now: now)
            case 13:
                advance(&input, &now)
                _ = state.onTick(now: now)
            default:
                advance(&input, &now)
            }
            checkPrimaryBackup(state)
        }
    }

    static func checkPrimaryBackup(_ state: PrimaryBackupState<SessionRecord>) {
        let memberIDs = Set(state.memberIDs)
        require(state.ownedCount == state.locations.values.filter { $0.owner == state.local }.count, "the owned count is off")
        require(state.parked.count <= state.settings.maxParked, "parked requests above the cap")
        require(!state.isReady || state.awaiting.isEmpty, "ready while waiting for locations")
        for (member, request) in state.awaiting {
            require(state.requested[member] == request, "waiting for a request that is not in flight")
        }
        require(Set(state.requested.keys).isSubset(of: memberIDs), "a location request in flight to a member not in the view")
        for (key, location) in state.locations {
            require(state.tombstones[key] == nil, "key '\(key)' has a location and a tombstone")
            require(location.stamp.counter <= Stamp.maxCounter, "a location stamp above the cap")
        }
        for entry in state.copies.values {
            require(entry.version <= Stamp.maxCounter, "a stamp above the cap was stored")
            _ = entry.deadline
        }
    }

    // MARK: - seeds

    public static func seeds() -> [(name: String, bytes: [UInt8])] {
        // Byte patterns that walk each machine through its main paths (start, members joining,
        // changes, a transfer, ticks); the fuzzer mutates from there.
        var seeds: [(String, [UInt8])] = []
        seeds.append(("membership", [0] + [0, 3, 0, 1, 2, 3, 5, 0, 1, 0, 0, 6, 1, 0, 0, 0, 11, 4, 9, 1, 1, 11, 15, 3, 2, 2, 0, 10, 2, 11, 15, 5, 3, 1, 0, 0]))
        seeds.append(("all-copies", [1] + [0, 0, 0, 0, 1, 2, 0, 5, 1, 2, 3, 0, 1, 0, 1, 4, 5, 2, 0, 7, 2, 3, 0, 1, 1, 1, 2, 3, 1, 7, 9, 9, 3, 1, 3, 2, 0, 0, 0, 1, 33, 9]))
        seeds.append(("primary-backup", [2] + [1, 0, 0, 1, 0, 2, 0, 7, 0, 5, 0, 0, 1, 3, 9, 1, 0, 0, 3, 6, 1, 1, 12, 1, 0, 0, 1, 1, 2, 2, 13, 3, 100, 1, 2]))
        return seeds
    }
}
