import Cohort

/// The pure logic of a store that keeps a copy of every entry on every node: applying local
/// and replicated changes by stamp, expiring entries, and the state transfer a node runs when
/// it starts (see `AllCopiesState+Transfer.swift`).
///
/// No I/O, no clock: time comes in as `now` (wall milliseconds), and what the shell must do
/// comes back as ``Action``s.
struct AllCopiesState<Entry: ReplicatedEntry>: Sendable {
    /// Timings, in milliseconds.
    struct Settings: Sendable, Equatable {
        /// How long a starting node waits for members to appear (and for members that are
        /// starting too) before it declares itself ready without a transfer.
        var settle: Int64 = 500
        /// A transfer that makes no progress for this long is abandoned for another member.
        var stallTimeout: Int64 = 10_000
        /// How long a deleted key is remembered.
        var tombstoneRetention: Int64 = 600_000
        /// The most parked transfer requests (from members not in the view yet).
        var maxParked: Int = 64
        /// The most changes kept for keys not known yet while the transfer runs; more are
        /// dropped (and counted), so that a flood of changes for unknown keys cannot grow the
        /// node without bound.
        var maxOrphans: Int = 100_000
        /// How often the node sends its digest to one member (round-robin); nil: only when a
        /// member returns.
        var antiEntropyInterval: Int64? = 30_000
        /// Keys per digest message and per keys request.
        var digestBatch: Int = 1000
    }

    /// Where the node is in its start-up.
    enum Phase: Sendable, Equatable {
        /// Looking for a member to copy the entries from.
        case starting
        /// Copying from `source`.
        case transferring(source: MemberID, request: UInt64)
        /// Has the source's entries; pulling from the other members of the view (see
        /// `AllCopiesState+Transfer.swift` for why) before reporting ready.
        case catchingUp
        /// Has every entry a member had when the transfer ended, and every change since.
        case ready
    }

    /// What the shell must do.
    enum Action: Sendable {
        /// Ask a member for all its entries.
        case requestTransfer(to: MemberID, request: UInt64)
        /// Send all entries of `snapshot` to a member, in batches.
        case serveTransfer(to: MemberID, request: UInt64, snapshot: [String: Entry], sourceReady: Bool)
        /// The node is ready: `transferred` entries arrived by transfer, in `elapsed` ms.
        case becameReady(transferred: Int, elapsed: Int64)
        /// Tell listeners.
        case event(ReplicaEvent<Entry>)
        /// Changes for unknown entries were discarded.
        case droppedOrphans(Int)
        /// Input from another member was refused (an unsolicited transfer batch); the text
        /// says what and from whom.
        case refused(String)
        /// Send a digest of `items` to a member (anti-entropy; see `AllCopiesState+AntiEntropy.swift`).
        case sendDigest(to: MemberID, items: [String: DigestItem], reply: Bool)
        /// Ask a member for its copies of keys.
        case requestKeys(from: MemberID, request: UInt64, keys: [String])
        /// Send copies and deletions of keys a member asked for.
        case serveKeys(to: MemberID, request: UInt64, entries: [String: Entry], deleted: [String: Stamp])
    }

    /// Why a local change was refused.
    enum LocalError: Error, Equatable {
        /// The key does not exist (or was deleted) and the change cannot create it.
        case notFound
        /// The change would create a key that exists.
        case exists
    }

    let local: MemberID
    let settings: Settings
    /// The live entries (set by this file and by anti-entropy, `AllCopiesState+AntiEntropy.swift`).
    var entries: [String: Entry] = [:]
    private(set) var phase: Phase = .starting
    /// Remote members, oldest first.
    private(set) var members: [Member] = []
    var tombstones: [String: Tombstone] = [:]
    /// Changes for keys not known yet, kept while a transfer runs.
    var orphans: [String: [Entry.Delta]] = [:]
    /// How many changes `orphans` holds.
    var orphanCount = 0
    var startedAt: WallMillis?
    /// Members that answered "not ready" or failed, during this start-up.
    var declined: Set<MemberID> = []
    /// Members whose entries this node is known to have: its transfer source and every member it
    /// pulled from (a copy taken while this node was in that member's view).
    var covered: Set<MemberID> = []
    /// Pulls in flight (while catching up or ready), by request id.
    var pulls: [UInt64: MemberID] = [:]
    /// Transfer requests from members not in the view yet.
    var parked: [(member: MemberID, request: UInt64)] = []
    var nextRequest: UInt64 = 1
    var lastProgress: WallMillis = 0
    var transferred = 0
    /// Anti-entropy key pulls in flight, by request id.
    var keyPulls: [UInt64: MemberID] = [:]
    /// The next member (index into `members`) periodic anti-entropy sends its digest to.
    var digestTurn = 0
    /// When periodic anti-entropy last ran.
    var lastAntiEntropy: WallMillis?
    /// The highest stamp counter issued for a key whose change is not applied here yet (a
    /// synchronous write waits for the other members before it is applied locally), so that a
    /// second write issued meanwhile, or the retry of a failed one, gets a higher stamp.
    var issued: [String: UInt64] = [:]

    init(local: MemberID, settings: Settings = Settings()) {
        self.local = local
        self.settings = settings
    }

    var isReady: Bool { phase == .ready }

    /// The stamp a local change of `key` gets.
    func nextStamp(for key: String) -> Stamp {
        let seen = max(entries[key]?.version ?? 0, tombstones[key]?.stamp.counter ?? 0, issued[key] ?? 0)
        return Stamp.after(seen, origin: Stamp.origin(of: local))
    }

    /// The stamp of a local change of `key`, remembered as issued until it is applied.
    mutating func issueStamp(for key: String) -> Stamp {
        let stamp = nextStamp(for: key)
        issued[key] = stamp.counter
        return stamp
    }

    /// The newest stamp this node holds for a key (its deletion's if it is deleted).
    func latestStamp(of key: String) -> Stamp {
        entries[key]?.latestStamp ?? tombstones[key]?.stamp ?? .zero
    }

    /// Whether a local change would be accepted now (without applying it).
    func check(_ key: String, _ delta: Entry.Delta, mustCreate: Bool, now: WallMillis) -> LocalError? {
        let current = live(key, now: now)
        if mustCreate, current != nil { return .exists }
        if let tombstone = tombstones[key], delta.stamp <= tombstone.stamp { return .notFound }
        if current == nil, Entry.creating(from: delta) == nil { return .notFound }
        return nil
    }

    /// Whether a change replicated from another node was computed from a copy that is behind
    /// this one: this node holds a change of the key, newer than the writer's `base`, made by
    /// another writer (or a deletion). Returns this node's newer stamp; nil when there is no
    /// conflict (or the writer did not say what its copy held).
    func conflict(_ key: String, _ delta: Entry.Delta, base: Stamp?) -> Stamp? {
        guard let base else { return nil }
        let held: Stamp
        if let entry = entries[key] {
            held = entry.latestStamp
        } else if let tombstone = tombstones[key] {
            held = tombstone.stamp
        } else {
            return nil
        }
        guard held > base, held != delta.stamp, held.origin != delta.stamp.origin else { return nil }
        return held
    }

    /// The entry of a key if it exists and has not expired at `now`.
    func live(_ key: String, now: WallMillis) -> Entry? {
        guard let entry = entries[key] else { return nil }
        if let deadline = entry.deadline, deadline <= now { return nil }
        return entry
    }

    // MARK: - changes

    /// A change made on this node. `mustCreate` refuses to overwrite an existing key.
    mutating func onLocalDelta(_ key: String, _ delta: Entry.Delta, mustCreate: Bool = false, now: WallMillis) -> Result<[Action], LocalError> {
        let current = live(key, now: now)
        if mustCreate, current != nil { return .failure(.exists) }
        if let tombstone = tombstones[key], delta.stamp <= tombstone.stamp {
            return .failure(.notFound)
        }
        var actions: [Action] = []
        if current == nil {
            guard Entry.creating(from: delta) != nil else { return .failure(.notFound) }
            if let expired = entries.removeValue(forKey: key) {
                // Expired but not swept yet: it goes now, and the new value replaces it.
                actions.append(.event(.removed(key: key, entry: expired, reason: .expired, origin: .local)))
            }
        }
        actions.append(contentsOf: apply(key, delta, origin: .local, now: now))
        return .success(actions)
    }

    /// A change replicated from another node.
    mutating func onRemoteDelta(_ key: String, _ delta: Entry.Delta, now: WallMillis) -> [Action] {
        apply(key, delta, origin: .replicated, now: now)
    }

    mutating func apply(_ key: String, _ delta: Entry.Delta, origin: ChangeOrigin, now: WallMillis, buffer: Bool = true) -> [Action] {
        var actions: [Action] = []
        if entries[key] == nil, let tombstone = tombstones[key] {
            // Deleted here: only a newer change that creates the key again brings it back.
            guard delta.stamp > tombstone.stamp, Entry.creating(from: delta) != nil else { return actions }
            tombstones[key] = nil
        }
        if let expired = entries[key], let deadline = expired.deadline, deadline <= now,
            delta.stamp > expired.latestStamp, Entry.creating(from: delta) != nil
        {
            // Expired here but not swept yet, and created again elsewhere: the new entry
            // replaces it instead of merging into it.
            entries[key] = nil
            tombstones[key] = nil
            actions.append(.event(.removed(key: key, entry: expired, reason: .expired, origin: .local)))
        }
        if var entry = entries[key] {
            switch entry.apply(delta) {
            case .unchanged:
                break
            case .changed(let effective):
                if let newKey = delta.renamedKey, newKey != key {
                    entries[key] = nil
                    tombstones[key] = Tombstone(stamp: delta.stamp, removedAt: now)
                    if let moved = moveIn(entry, to: newKey) {
                        actions.append(.event(.renamed(from: key, to: newKey, entry: moved, origin: origin)))
                        actions.append(contentsOf: applyOrphans(newKey, now: now))
                    } else {
                        actions.append(.event(.removed(key: key, entry: entry, reason: .removed, origin: origin)))
                    }
                } else {
                    entries[key] = entry
                    actions.append(.event(.updated(key: key, entry: entry, change: effective, origin: origin)))
                }
            case .deleted:
                entries[key] = nil
                tombstones[key] = Tombstone(stamp: max(delta.stamp, entry.latestStamp), removedAt: now)
                actions.append(.event(.removed(key: key, entry: entry, reason: .removed, origin: origin)))
            }
        } else if let created = Entry.creating(from: delta) {
            if let newKey = delta.renamedKey, newKey != key {
                tombstones[key] = Tombstone(stamp: delta.stamp, removedAt: now)
                if let moved = moveIn(created, to: newKey) {
                    actions.append(.event(.created(key: newKey, entry: moved, origin: origin)))
                }
            } else {
                entries[key] = created
                actions.append(.event(.created(key: key, entry: created, origin: origin)))
                actions.append(contentsOf: applyOrphans(key, now: now))
            }
        } else if delta.deletes {
            // Deleting a key this node never saw: remember it so a late copy cannot re-create it.
            tombstones[key] = Tombstone(stamp: delta.stamp, removedAt: now)
            if let dropped = orphans.removeValue(forKey: key) { orphanCount -= dropped.count }
        } else if buffer, !isReady, orphanCount < settings.maxOrphans {
            orphans[key, default: []].append(delta)
            orphanCount += 1
        } else {
            actions.append(.droppedOrphans(1))
        }
        return actions
    }

    /// Puts an entry that moved (a session id change) at its new key: merged into an entry
    /// there, or instead of a deletion older than it. A deletion of the new key that is not older
    /// wins, as it would against any change: the entry stays deleted (nil). Either way a key is
    /// never both live and deleted.
    private mutating func moveIn(_ entry: Entry, to newKey: String) -> Entry? {
        if let tombstone = tombstones[newKey] {
            guard entry.latestStamp > tombstone.stamp else { return nil }
            tombstones[newKey] = nil
        }
        var moved = entry
        if var existing = entries[newKey] {
            _ = existing.merge(entry)
            moved = existing
        }
        entries[newKey] = moved
        return moved
    }

    private mutating func applyOrphans(_ key: String, now: WallMillis) -> [Action] {
        guard let waiting = orphans.removeValue(forKey: key) else { return [] }
        orphanCount -= waiting.count
        var actions: [Action] = []
        for delta in waiting {
            actions.append(contentsOf: apply(key, delta, origin: .replicated, now: now, buffer: false))
        }
        return actions
    }

    /// Full copies from another node (a transfer batch): merged field by field.
    mutating func merge(_ incoming: [String: Entry], now: WallMillis) -> [Action] {
        var actions: [Action] = []
        for (key, copy) in incoming {
            if let tombstone = tombstones[key] {
                guard copy.latestStamp > tombstone.stamp else { continue }
                tombstones[key] = nil
            }
            if var entry = entries[key] {
                let clashes = entry.conflicts(with: copy)
                if entry.merge(copy) {
                    entries[key] = entry
                    actions.append(.event(.updated(key: key, entry: entry, change: nil, origin: .replicated)))
                }
                if !clashes.isEmpty { actions.append(.event(.conflict(key: key, fields: clashes, entry: entry))) }
            } else {
                entries[key] = copy
                actions.append(.event(.created(key: key, entry: copy, origin: .replicated)))
            }
            actions.append(contentsOf: applyOrphans(key, now: now))
        }
        return actions
    }

    // MARK: - time

    /// Removes expired entries and forgets old tombstones.
    mutating func sweep(now: WallMillis) -> [Action] {
        var actions: [Action] = []
        for (key, entry) in entries {
            guard let deadline = entry.deadline, deadline <= now else { continue }
            entries[key] = nil
            tombstones[key] = Tombstone(stamp: entry.latestStamp, removedAt: now)
            actions.append(.event(.removed(key: key, entry: entry, reason: .expired, origin: .local)))
        }
        let horizon = now - settings.tombstoneRetention
        tombstones = tombstones.filter { $0.value.removedAt > horizon }
        if !issued.isEmpty {
            issued = issued.filter { key, counter in (entries[key]?.version ?? 0) < counter && entries[key] != nil }
        }
        return actions
    }

    mutating func setMembers(_ list: [Member]) {
        members = list.filter { $0.id != local }.sorted(by: MembershipView.oldestFirst)
    }

    mutating func setPhase(_ phase: Phase) { self.phase = phase }
}
