import Cohort

/// Anti-entropy of an all-copies store: members compare digests and pull what differs.
///
/// A member that was away (frozen, cut off, or removed by a wrong verdict) missed the changes made
/// meanwhile, and the others missed whatever it wrote. Each side fixes only what differs:
/// - a node sends its digest — per key the newest stamp and a fingerprint of every field's stamp,
///   or the deletion stamp — to a member when the member (re)joins its view, and periodically to
///   one member after another (``Settings/antiEntropyInterval``, 30 s by default);
/// - the receiver pulls the keys whose copy differs from its own (``Action/requestKeys(from:request:keys:)``),
///   and answers with a digest of the keys where its own copy differs or the sender has none, so
///   that the sender pulls those (a reply is not answered again);
/// - pulled copies merge field by field by stamp, deletions by stamp, exactly as a transfer does:
///   copies that merged the same changes are equal everywhere. A field written on both sides from
///   the same version (same counter, two writers) is a conflict: the higher origin wins on every
///   node, and the merge publishes ``ReplicaEvent/conflict(key:fields:entry:)`` (counted in the
///   `conflicts` metrics).
///
/// Only copies this node asked that member for are merged: a keys reply is refused otherwise,
/// like a transfer batch.
extension AllCopiesState {
    /// What this node holds of one key, for a digest.
    func digestItem(_ key: String) -> DigestItem? {
        if let entry = entries[key] {
            return DigestItem(stamp: entry.latestStamp, fingerprint: entry.fingerprint, deleted: false)
        }
        if let tombstone = tombstones[key] {
            return DigestItem(stamp: tombstone.stamp, fingerprint: 0, deleted: true)
        }
        return nil
    }

    /// The digest of everything this node holds (entries and remembered deletions).
    func digest() -> [String: DigestItem] {
        var items: [String: DigestItem] = [:]
        items.reserveCapacity(entries.count + tombstones.count)
        for (key, entry) in entries {
            items[key] = DigestItem(stamp: entry.latestStamp, fingerprint: entry.fingerprint, deleted: false)
        }
        for (key, tombstone) in tombstones where entries[key] == nil {
            items[key] = DigestItem(stamp: tombstone.stamp, fingerprint: 0, deleted: true)
        }
        return items
    }

    /// Periodic work: every ``Settings/antiEntropyInterval`` the digest goes to the next member.
    mutating func periodicAntiEntropy(now: WallMillis) -> [Action] {
        guard let interval = settings.antiEntropyInterval, interval > 0, !members.isEmpty else { return [] }
        guard let last = lastAntiEntropy else {
            lastAntiEntropy = now
            return []
        }
        guard now - last >= interval else { return [] }
        lastAntiEntropy = now
        let member = members[digestTurn % members.count]
        digestTurn = (digestTurn + 1) % max(1, members.count)
        return [.sendDigest(to: member.id, items: digest(), reply: false)]
    }

    /// A digest batch from a member: pulls what differs; answers (unless `reply`) with what this
    /// node holds differently or alone in the batch's key range (`after` exclusive, `through`
    /// inclusive; nil is open).
    mutating func onDigest(
        from member: MemberID, items: [String: DigestItem], reply: Bool, after: String?, through: String?
    ) -> [Action] {
        // A starting node gets everything by transfer; a stranger is not pulled from.
        guard isReady, members.contains(where: { $0.id == member }) else { return [] }
        var wanted: [String] = []
        var back: [String: DigestItem] = [:]
        for (key, theirs) in items {
            guard let mine = digestItem(key) else {
                if !theirs.deleted { wanted.append(key) }
                continue
            }
            if mine == theirs { continue }
            switch (mine.deleted, theirs.deleted) {
            case (true, true):
                continue
            case (false, true):
                if mine.stamp < theirs.stamp { wanted.append(key) } else { back[key] = mine }
            case (true, false):
                if theirs.stamp > mine.stamp { wanted.append(key) } else { back[key] = mine }
            case (false, false):
                // Both live and different: each side pulls the other's copy and merges it.
                wanted.append(key)
                back[key] = mine
            }
        }
        if !reply {
            for (key, entry) in entries where items[key] == nil {
                if let after, key <= after { continue }
                if let through, key > through { continue }
                back[key] = DigestItem(stamp: entry.latestStamp, fingerprint: entry.fingerprint, deleted: false)
            }
        }
        var actions = pullKeys(wanted.sorted(), from: member)
        if !reply, !back.isEmpty {
            actions.append(.sendDigest(to: member, items: back, reply: true))
        }
        return actions
    }

    /// Asks `member` for its copies of `keys`, in batches of ``Settings/digestBatch``.
    mutating func pullKeys(_ keys: [String], from member: MemberID) -> [Action] {
        guard !keys.isEmpty else { return [] }
        var actions: [Action] = []
        let size = max(1, min(settings.digestBatch, ReplicaKeysRequest.maxKeys))
        var start = 0
        while start < keys.count {
            let end = min(keys.count, start + size)
            let request = nextRequest
            nextRequest += 1
            keyPulls[request] = member
            actions.append(.requestKeys(from: member, request: request, keys: Array(keys[start..<end])))
            start = end
        }
        return actions
    }

    /// A member asks for copies of keys: answered with what this node holds of them.
    func onKeysRequest(from member: MemberID, request: UInt64, keys: [String]) -> [Action] {
        var found: [String: Entry] = [:]
        var deleted: [String: Stamp] = [:]
        for key in keys {
            if let entry = entries[key] {
                found[key] = entry
            } else if let tombstone = tombstones[key] {
                deleted[key] = tombstone.stamp
            }
        }
        return [.serveKeys(to: member, request: request, entries: found, deleted: deleted)]
    }

    /// Copies this node asked a member for: merged (entries by field stamps, deletions by stamp).
    /// A reply this node did not ask that member for is refused.
    mutating func onKeysReply(
        from member: MemberID, request: UInt64, entries copies: [String: Entry], deleted: [String: Stamp], now: WallMillis
    ) -> [Action] {
        guard keyPulls[request] == member else {
            return [.refused("a keys reply (request \(request), \(copies.count) entries) from \(member), which this node did not ask for it")]
        }
        keyPulls[request] = nil
        var actions = merge(copies, now: now)
        for (key, stamp) in deleted {
            if let entry = entries[key] {
                guard entry.latestStamp < stamp else { continue }
                entries[key] = nil
                tombstones[key] = Tombstone(stamp: stamp, removedAt: now)
                actions.append(.event(.removed(key: key, entry: entry, reason: .removed, origin: .replicated)))
            } else if let tombstone = tombstones[key], tombstone.stamp < stamp {
                tombstones[key] = Tombstone(stamp: stamp, removedAt: tombstone.removedAt)
            }
        }
        return actions
    }

    /// A keys request could not be delivered: forgotten (the next digest asks again).
    mutating func onKeysRequestFailed(request: UInt64) {
        keyPulls[request] = nil
    }
}
