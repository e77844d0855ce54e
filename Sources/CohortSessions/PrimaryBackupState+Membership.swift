import Cohort

/// Start-up, membership changes, re-backup and expiry of a primary/backup store.
///
/// - A starting node asks every member for the locations of the keys that member owns (each
///   owner answers for its own keys; no single source, nobody waits on a starting node) and
///   is ready once all have answered (or left).
/// - When a holder leaves: a key whose owner left is promoted to its first live backup (every
///   node computes the same one); the owner (old or new) picks replacement backups by
///   rendezvous rank and sends them full copies. A key is lost only when all its holders left.
/// - Only owners expire keys; they announce the expired keys in one message per sweep.
extension PrimaryBackupState {
    // MARK: - start

    mutating func onStart(members list: [Member], now: WallMillis) -> [Action] {
        var actions: [Action] = []
        startedAt = now
        setMembers(list)
        for member in members {
            actions.append(askLocations(member.id))
        }
        actions.append(contentsOf: checkReady(now: now))
        return actions
    }

    private mutating func askLocations(_ member: MemberID) -> Action {
        let request = nextRequest
        nextRequest += 1
        if phase == .starting { awaiting[member] = request }
        requested[member] = request
        return .requestLocations(to: member, request: request)
    }

    mutating func checkReady(now: WallMillis) -> [Action] {
        var actions: [Action] = []
        if phase == .starting, awaiting.isEmpty, now >= (startedAt ?? now) + settings.settle {
            phase = .ready
            actions.append(.becameReady(elapsed: now - (startedAt ?? now)))
        }
        return actions
    }

    // MARK: - locations

    /// A member asks for the locations of the keys this node owns.
    mutating func onLocationsRequest(from member: MemberID, request: UInt64, now: WallMillis) -> [Action] {
        var actions: [Action] = []
        guard members.contains(where: { $0.id == member }) else {
            parked.append((member, request))
            if parked.count > settings.maxParked { parked.removeFirst(parked.count - settings.maxParked) }
            return actions
        }
        incapable.remove(member)
        actions.append(.serveLocations(to: member, request: request, locations: locations.filter { $0.value.owner == local }))
        // Keys short of backups may place some on the member now.
        actions.append(contentsOf: refill(now: now))
        return actions
    }

    /// Locations a member owns, in answer to this node's request. A batch this node did not ask
    /// that member for (or after its last one) is refused.
    mutating func onLocationsBatch(from member: MemberID, request: UInt64, locations update: [String: Location], last: Bool, now: WallMillis) -> [Action] {
        guard requested[member] == request else {
            return [.refused("a locations batch (request \(request), \(update.count) locations) from \(member), which this node did not ask for it")]
        }
        var actions = onLocate(update, now: now)
        if last {
            requested[member] = nil
            if awaiting[member] == request {
                awaiting[member] = nil
                actions.append(contentsOf: checkReady(now: now))
            }
        }
        return actions
    }

    /// A location request could not be delivered (or the member does not run this store).
    mutating func onLocationsRequestFailed(to member: MemberID, request: UInt64, now: WallMillis) -> [Action] {
        if awaiting[member] == request { awaiting[member] = nil }
        if requested[member] == request { requested[member] = nil }
        return checkReady(now: now)
    }

    /// A copy could not be delivered to a member: it gets no more copies until it asks for
    /// locations (which shows it runs the store).
    mutating func onStoreFailed(to member: MemberID, now: WallMillis) -> [Action] {
        incapable.insert(member)
        return refill(now: now)
    }

    // MARK: - membership

    mutating func onMemberAdded(_ member: Member, now: WallMillis) -> [Action] {
        var actions: [Action] = []
        guard member.id != local, !members.contains(member) else { return actions }
        setMembers(members + [member])
        actions.append(askLocations(member.id))
        let waiting = parked.filter { $0.member == member.id }
        parked.removeAll { $0.member == member.id }
        for request in waiting {
            actions.append(contentsOf: onLocationsRequest(from: member.id, request: request.request, now: now))
        }
        return actions
    }

    mutating func onMemberRemoved(_ id: MemberID, now: WallMillis) -> [Action] {
        var actions: [Action] = []
        setMembers(members.filter { $0.id != id })
        parked.removeAll { $0.member == id }
        incapable.remove(id)
        awaiting[id] = nil
        requested[id] = nil
        var promoted: [String: Location] = [:]
        var lost = 0
        for (key, location) in locations where location.holders.contains(id) {
            var next = location
            next.backups.removeAll { $0 == id }
            if location.owner == id {
                guard let heir = next.backups.first(where: isAlive) else {
                    setLocation(key, nil)
                    if let copy = copies.removeValue(forKey: key) {
                        actions.append(.event(.removed(key: key, entry: copy, reason: .lost, origin: .local)))
                    }
                    lost += 1
                    continue
                }
                next.owner = heir
                next.backups.removeAll { $0 == heir }
                if heir == local {
                    next.stamp = nextLocationStamp(for: key)
                    promoted[key] = next
                }
            }
            setLocation(key, next)
        }
        if lost > 0 { actions.append(.dropped(lost: lost, orphans: 0)) }
        let refilled = refill(now: now)
        var relocated = Set<String>()
        for action in refilled { if case .locate(let update, _) = action { relocated.formUnion(update.keys) } }
        let announce = promoted.filter { !relocated.contains($0.key) }
        if !announce.isEmpty { actions.append(.locate(announce, to: memberIDs)) }
        actions.append(contentsOf: refilled)
        actions.append(contentsOf: checkReady(now: now))
        return actions
    }

    /// Gives keys this node owns the backups they lack; `keys` limits the check.
    mutating func refill(now: WallMillis, keys: [String]? = nil) -> [Action] {
        var actions: [Action] = []
        var moved: [String: Location] = [:]
        var stores: [MemberID: [(String, Entry, Location)]] = [:]
        for key in keys ?? Array(locations.keys) {
            guard let location = locations[key], location.owner == local, let copy = live(key, now: now) else { continue }
            let wanted = place(key, owner: local, keeping: location.backups)
            guard wanted != location.backups else { continue }
            let next = Location(owner: local, backups: wanted, stamp: nextLocationStamp(for: key))
            setLocation(key, next)
            moved[key] = next
            for member in wanted where !location.backups.contains(member) {
                stores[member, default: []].append((key, copy, next))
            }
        }
        for (member, list) in stores {
            for (key, copy, location) in list {
                actions.append(.store(key: key, entry: copy, location: location, to: [member]))
            }
        }
        if !moved.isEmpty { actions.append(.locate(moved, to: memberIDs)) }
        return actions
    }

    // MARK: - time

    /// Expiry of owned keys (announced in one message), readiness, old tombstones.
    mutating func onTick(now: WallMillis) -> [Action] {
        var actions: [Action] = []
        var expired: [String: Stamp] = [:]
        for (key, location) in locations where location.owner == local {
            guard let copy = copies[key], let deadline = copy.deadline, deadline <= now else { continue }
            let (stamp, _) = remove(key, now: now)
            expired[key] = stamp
            actions.append(.event(.removed(key: key, entry: copy, reason: .expired, origin: .local)))
        }
        if !expired.isEmpty { actions.append(.removeLocations(expired, reason: .expired, to: memberIDs)) }
        let horizon = now - settings.tombstoneRetention
        tombstones = tombstones.filter { $0.value.removedAt > horizon }
        actions.append(contentsOf: checkReady(now: now))
        if !incapable.isEmpty { actions.append(contentsOf: refill(now: now)) }
        return actions
    }

    // MARK: - hand-off

    /// This node is about to leave: every key it holds gets its copies elsewhere first. A key it
    /// owns gets a new owner (its first live backup, else the best-ranked member) and the
    /// backups it needs; a key it backs is replaced by another backup. The new holders receive
    /// full copies (``Action/store(key:entry:location:to:)``) under a new location stamp, and
    /// everyone the new location, so when the node leaves it owns and backs nothing: whether
    /// the others see a leave or a crash, nothing needs promoting.
    mutating func onHandOff(now: WallMillis) -> [Action] {
        guard !members.isEmpty else { return [] }
        var actions: [Action] = []
        var moved: [String: Location] = [:]
        for (key, location) in locations where location.holders.contains(local) {
            guard let entry = copies[key] else { continue }
            let remaining = location.holders.filter { $0 != local && isAlive($0) }
            let owner = location.owner != local && isAlive(location.owner)
                ? location.owner
                : remaining.first ?? Rendezvous.rank(key, among: memberIDs).first
            guard let owner else { continue }
            var backups = remaining.filter { $0 != owner && !incapable.contains($0) }
            let candidates = memberIDs.filter { $0 != owner && !backups.contains($0) && !incapable.contains($0) }
            for candidate in Rendezvous.rank(key, among: candidates) where backups.count < settings.backups {
                backups.append(candidate)
            }
            if backups.count > settings.backups { backups = Array(backups.prefix(settings.backups)) }
            let next = Location(owner: owner, backups: backups, stamp: nextLocationStamp(for: key))
            setLocation(key, next)
            moved[key] = next
            actions.append(.store(key: key, entry: entry, location: next, to: next.holders))
        }
        if !moved.isEmpty { actions.append(.locate(moved, to: memberIDs)) }
        return actions
    }
}
