import Cohort

/// The pure logic of a store that keeps each entry on an owner (primary) and a few backups,
/// and a small location table of every key on every node (Tomcat's LazyReplicatedMap, without
/// its flaws; see `PrimaryBackupState+Membership.swift` for failover and start-up).
///
/// - The owner applies changes and sends them to the backups only; other nodes learn only
///   where the key lives.
/// - Backups are placed by rendezvous hashing over the view, so placement needs no
///   coordination, and a copy is only moved when a holder leaves.
/// - Locations carry stamps: a late location update never overrides a newer one, and removed
///   keys leave tombstones.
struct PrimaryBackupState<Entry: ReplicatedEntry>: Sendable {
    struct Settings: Sendable, Equatable {
        /// Backups per key.
        var backups = 1
        /// How long a starting node waits before it is ready with no members.
        var settle: Int64 = 500
        /// How long removed keys are remembered.
        var tombstoneRetention: Int64 = 600_000
        /// The most parked location requests.
        var maxParked = 64
    }

    enum Action: Sendable {
        /// Send a full copy to new holders.
        case store(key: String, entry: Entry, location: Location, to: [MemberID])
        /// Send a change to the backups.
        case update(key: String, delta: Entry.Delta, to: [MemberID])
        /// Tell members where keys live now.
        case locate([String: Location], to: [MemberID])
        /// Tell members keys are gone.
        case removeLocations([String: Stamp], reason: RemovalReason, to: [MemberID])
        /// Ask a member for the locations of the keys it owns.
        case requestLocations(to: MemberID, request: UInt64)
        /// Send a member the locations of the keys this node owns.
        case serveLocations(to: MemberID, request: UInt64, locations: [String: Location])
        /// Answer a fetch.
        case reply(to: MemberID, request: UInt64, key: String, entry: Entry?, location: Location?)
        /// The node knows where every key lives.
        case becameReady(elapsed: Int64)
        /// Tell listeners.
        case event(ReplicaEvent<Entry>)
        /// Keys were lost (every holder left), or changes for unknown copies were dropped.
        case dropped(lost: Int, orphans: Int)
        /// Input from another member was refused (locations it was not asked for); the text
        /// says what and from whom.
        case refused(String)
    }

    enum LocalError: Error, Equatable {
        case notFound
        case exists
        /// Another node owns the key: fetch it with ownership first.
        case notOwner(Location)
    }

    enum Phase: Sendable, Equatable { case starting, ready }

    let local: MemberID
    let settings: Settings
    private(set) var members: [Member] = []
    private(set) var locations: [String: Location] = [:]
    var copies: [String: Entry] = [:]
    var tombstones: [String: Tombstone] = [:]
    var phase: Phase = .starting
    var startedAt: WallMillis?
    /// Location requests this node waits for while starting.
    var awaiting: [MemberID: UInt64] = [:]
    /// Every location request in flight, by member: only their answers are applied.
    var requested: [MemberID: UInt64] = [:]
    var parked: [(member: MemberID, request: UInt64)] = []
    var nextRequest: UInt64 = 1
    /// Members that refused a copy (they do not run this store).
    var incapable: Set<MemberID> = []
    /// How many keys this node owns.
    private(set) var ownedCount = 0

    init(local: MemberID, settings: Settings = Settings()) {
        self.local = local
        self.settings = settings
    }

    var origin: UInt64 { Stamp.origin(of: local) }
    var isReady: Bool { phase == .ready }
    var memberIDs: [MemberID] { members.map(\.id) }

    func isAlive(_ member: MemberID) -> Bool { member == local || members.contains { $0.id == member } }

    /// Remote members except some.
    func others(excluding excluded: some Sequence<MemberID>) -> [MemberID] {
        let skip = Set(excluded)
        return members.map(\.id).filter { !skip.contains($0) }
    }

    /// The copy of a key held here, if live.
    func live(_ key: String, now: WallMillis) -> Entry? {
        guard let entry = copies[key] else { return nil }
        if let deadline = entry.deadline, deadline <= now { return nil }
        return entry
    }

    /// Sets or clears a key's location, keeping ``ownedCount`` right.
    mutating func setLocation(_ key: String, _ location: Location?) {
        let wasOwned = locations[key]?.owner == local
        locations[key] = location
        let isOwned = location?.owner == local
        if wasOwned != isOwned { ownedCount += isOwned ? 1 : -1 }
    }

    mutating func setMembers(_ list: [Member]) {
        members = list.filter { $0.id != local }.sorted(by: MembershipView.oldestFirst)
    }

    func nextEntryStamp(for key: String) -> Stamp {
        let seen = max(copies[key]?.version ?? 0, locations[key]?.stamp.counter ?? 0, tombstones[key]?.stamp.counter ?? 0)
        return Stamp.after(seen, origin: origin)
    }

    func nextLocationStamp(for key: String) -> Stamp {
        let seen = max(locations[key]?.stamp.counter ?? 0, tombstones[key]?.stamp.counter ?? 0)
        return Stamp.after(seen, origin: origin)
    }

    /// The backups a key should have: the live ones it has, topped up by rendezvous rank.
    func place(_ key: String, owner: MemberID, keeping current: [MemberID]) -> [MemberID] {
        var chosen = current.filter { $0 != owner && isAlive($0) && !incapable.contains($0) }
        if chosen.count > settings.backups { chosen = Array(chosen.prefix(settings.backups)) }
        guard chosen.count < settings.backups else { return chosen }
        let candidates = ([local] + memberIDs).filter { $0 != owner && !chosen.contains($0) && !incapable.contains($0) }
        for candidate in Rendezvous.rank(key, among: candidates) where chosen.count < settings.backups {
            chosen.append(candidate)
        }
        return chosen
    }

    // MARK: - local changes

    /// A change made on this node. The node must own the key, or the change must create it.
    mutating func onLocalCommit(_ key: String, _ delta: Entry.Delta, mustCreate: Bool, now: WallMillis) -> Result<[Action], LocalError> {
        var actions: [Action] = []
        let location = locations[key]
        if let location, location.owner != local, live(key, now: now) != nil || isAlive(location.owner) {
            return .failure(mustCreate ? .exists : .notOwner(location))
        }
        if var copy = live(key, now: now), let location, location.owner == local {
            if mustCreate { return .failure(.exists) }
            switch copy.apply(delta) {
            case .unchanged:
                break
            case .changed(let effective):
                if let newKey = delta.renamedKey, newKey != key {
                    let removal = remove(key, now: now).stamp
                    let moved = Location(owner: local, backups: location.backups, stamp: nextLocationStamp(for: newKey))
                    copies[newKey] = copy
                    setLocation(newKey, moved)
                    tombstones[newKey] = nil
                    actions.append(.update(key: key, delta: delta, to: location.backups))
                    actions.append(.removeLocations([key: removal], reason: .removed, to: memberIDs))
                    actions.append(.locate([newKey: moved], to: memberIDs))
                    actions.append(.event(.renamed(from: key, to: newKey, entry: copy, origin: .local)))
                } else {
                    copies[key] = copy
                    actions.append(.update(key: key, delta: delta, to: location.backups))
                    actions.append(.event(.updated(key: key, entry: copy, change: effective, origin: .local)))
                }
            case .deleted:
                let (stamp, old) = remove(key, now: now)
                actions.append(.removeLocations([key: stamp], reason: .removed, to: memberIDs))
                actions.append(.event(.removed(key: key, entry: old, reason: .removed, origin: .local)))
            }
            return .success(actions)
        }
        guard let created = Entry.creating(from: delta) else { return .failure(.notFound) }
        if copies[key] != nil {
            // Expired here but not swept yet: the new value replaces it.
            copies[key] = nil
        }
        let target = delta.renamedKey ?? key
        let placed = Location(owner: local, backups: place(target, owner: local, keeping: location?.backups ?? []), stamp: nextLocationStamp(for: target))
        copies[target] = created
        setLocation(target, placed)
        tombstones[target] = nil
        actions.append(.store(key: target, entry: created, location: placed, to: placed.backups))
        actions.append(.locate([target: placed], to: others(excluding: placed.backups)))
        actions.append(.event(.created(key: target, entry: created, origin: .local)))
        return .success(actions)
    }

    /// Forgets a key here; returns the removal stamp and the copy.
    mutating func remove(_ key: String, now: WallMillis) -> (stamp: Stamp, entry: Entry?) {
        let stamp = Stamp.after(locations[key]?.stamp.counter ?? 0, origin: origin)
        setLocation(key, nil)
        let entry = copies.removeValue(forKey: key)
        tombstones[key] = Tombstone(stamp: max(stamp, tombstones[key]?.stamp ?? .zero), removedAt: now)
        return (stamp, entry)
    }

    // MARK: - replicated changes

    /// A full copy from the owner: authoritative for this holder.
    mutating func onStore(_ key: String, entry: Entry, location: Location, now: WallMillis) -> [Action] {
        var actions: [Action] = []
        if let tombstone = tombstones[key], location.stamp <= tombstone.stamp { return actions }
        if let current = locations[key], current.stamp > location.stamp {
            // An older placement: the location stays, but the data is judged by entry version,
            // not by where it was: a copy this node holds merges the sender's changes (field
            // by field, by stamp), so writes made on either side of a split are both kept.
            if var copy = copies[key], copy.merge(entry) {
                copies[key] = copy
                actions.append(.event(.updated(key: key, entry: copy, change: nil, origin: .replicated)))
            }
            return actions
        }
        setLocation(key, location)
        tombstones[key] = nil
        guard location.holders.contains(local) else {
            copies[key] = nil
            return actions
        }
        if var copy = copies[key] {
            // Merged rather than replaced: a copy of an older version cannot roll this one back.
            if copy.merge(entry) { copies[key] = copy }
            actions.append(.event(.updated(key: key, entry: copy, change: nil, origin: .replicated)))
        } else {
            copies[key] = entry
            actions.append(.event(.created(key: key, entry: entry, origin: .replicated)))
        }
        return actions
    }

    /// A change from the owner, for this backup's copy.
    mutating func onUpdate(_ key: String, delta: Entry.Delta, now: WallMillis) -> [Action] {
        var actions: [Action] = []
        guard var copy = copies[key] else {
            actions.append(.dropped(lost: 0, orphans: 1))
            return actions
        }
        switch copy.apply(delta) {
        case .unchanged:
            break
        case .changed(let effective):
            if let newKey = delta.renamedKey, newKey != key {
                copies[key] = nil
                copies[newKey] = copy
                if let location = locations[key] {
                    setLocation(key, nil)
                    // A removal of the new key that is not older than the location wins, as in
                    // onLocate: a key never has both a location and a tombstone.
                    if locations[newKey] == nil, tombstones[newKey].map({ location.stamp > $0.stamp }) ?? true {
                        tombstones[newKey] = nil
                        setLocation(newKey, location)
                    }
                }
                actions.append(.event(.renamed(from: key, to: newKey, entry: copy, origin: .replicated)))
            } else {
                copies[key] = copy
                actions.append(.event(.updated(key: key, entry: copy, change: effective, origin: .replicated)))
            }
        case .deleted:
            copies[key] = nil
            actions.append(.event(.removed(key: key, entry: copy, reason: .removed, origin: .replicated)))
        }
        return actions
    }

    /// New locations from their owners.
    mutating func onLocate(_ update: [String: Location], now: WallMillis) -> [Action] {
        for (key, location) in update {
            if let tombstone = tombstones[key], location.stamp <= tombstone.stamp { continue }
            if let current = locations[key], current.stamp >= location.stamp { continue }
            setLocation(key, location)
            tombstones[key] = nil
            if !location.holders.contains(local) { copies[key] = nil }
        }
        return []
    }

    /// Keys removed (or expired) by their owners.
    mutating func onRemoveLocations(_ keys: [String: Stamp], reason: RemovalReason, now: WallMillis) -> [Action] {
        var actions: [Action] = []
        for (key, stamp) in keys {
            if let current = locations[key], current.stamp >= stamp { continue }
            setLocation(key, nil)
            tombstones[key] = Tombstone(stamp: max(stamp, tombstones[key]?.stamp ?? .zero), removedAt: now)
            if let copy = copies.removeValue(forKey: key) {
                actions.append(.event(.removed(key: key, entry: copy, reason: reason, origin: .replicated)))
            }
        }
        return actions
    }

    // MARK: - fetch

    /// A node without a copy asks for one (and, with `take`, for ownership).
    mutating func onFetchRequest(_ key: String, from requester: MemberID, request: UInt64, take: Bool, now: WallMillis) -> [Action] {
        var actions: [Action] = []
        guard let location = locations[key], let copy = live(key, now: now), location.holders.contains(local) else {
            actions.append(.reply(to: requester, request: request, key: key, entry: nil, location: locations[key]))
            return actions
        }
        if take, requester != location.owner, location.owner == local || !isAlive(location.owner) {
            let backups = ([local] + location.backups).filter { $0 != requester && isAlive($0) }.prefix(settings.backups)
            let moved = Location(owner: requester, backups: Array(backups), stamp: nextLocationStamp(for: key))
            setLocation(key, moved)
            if !moved.holders.contains(local) { copies[key] = nil }
            actions.append(.reply(to: requester, request: request, key: key, entry: copy, location: moved))
            actions.append(.locate([key: moved], to: others(excluding: [requester])))
        } else {
            actions.append(.reply(to: requester, request: request, key: key, entry: copy, location: location))
        }
        return actions
    }

    /// The answer to this node's fetch.
    mutating func onFetchReply(_ key: String, entry: Entry?, location: Location?, now: WallMillis) -> [Action] {
        var actions: [Action] = []
        guard let location else { return actions }
        if let tombstone = tombstones[key], location.stamp <= tombstone.stamp { return actions }
        if let current = locations[key], current.stamp > location.stamp { return actions }
        setLocation(key, location)
        tombstones[key] = nil
        if let entry, location.holders.contains(local) {
            copies[key] = entry
            if location.owner == local, settings.backups > location.backups.count {
                actions.append(contentsOf: refill(now: now, keys: [key]))
            }
        } else if !location.holders.contains(local) {
            // A placement that no longer lists this node (it was away while the key moved): a
            // copy it kept is behind and must not be served.
            copies[key] = nil
        }
        return actions
    }

    /// Whether a change from the key's owner was made from a copy that is behind this node's: this
    /// node's copy holds a change as new or newer (by stamp counter) from another writer. Returns
    /// this node's newest stamp; nil when the change may be applied.
    func staleChange(_ key: String, _ delta: Entry.Delta) -> Stamp? {
        guard let copy = copies[key] else { return nil }
        let held = copy.latestStamp
        guard held.counter >= delta.stamp.counter, held.origin != delta.stamp.origin, held != delta.stamp else { return nil }
        return held
    }
}
