import Cohort

/// State transfer of an all-copies store.
///
/// A starting node asks the oldest member it has not tried for all entries, merges the batches
/// as they come, and applies replicated changes meanwhile (changes for keys it has not seen
/// yet wait in `orphans` until the key arrives). Unlike Tomcat's DeltaManager:
/// - every node answers a transfer request at once, even while starting itself: a starting
///   source sends what it has and says it is not ready, and the requester moves on to the next
///   member — two nodes starting together never wait on each other;
/// - a node with no ready member to copy from is ready after ``AllCopiesState/Settings/settle``;
/// - a transfer whose source leaves (or stalls) restarts from another member;
/// - once it has the source's entries, it also pulls from every other member of its view before
///   it is ready (phase ``AllCopiesState/Phase/catchingUp``): a member sends its changes only to
///   the members in its own view, so a change made by a member that did not know the joiner yet
///   may have reached the source after the source's snapshot, and only that member's own copy
///   (taken once the joiner is in its view) is sure to hold it;
/// - a ready node that meets a member it has not pulled from (a partition that healed, a member
///   discovered late) pulls from it too, and merges.
extension AllCopiesState {
    // MARK: - start

    /// The store starts; `members` is the current view.
    mutating func onStart(members list: [Member], now: WallMillis) -> [Action] {
        startedAt = now
        setMembers(list)
        return pickSource(now: now)
    }

    /// Chooses the next member to copy from, or declares the node ready.
    mutating func pickSource(now: WallMillis) -> [Action] {
        var actions: [Action] = []
        guard phase == .starting else { return actions }
        if let source = members.first(where: { !declined.contains($0.id) }) {
            let request = nextRequest
            nextRequest += 1
            setPhase(.transferring(source: source.id, request: request))
            lastProgress = now
            actions.append(.requestTransfer(to: source.id, request: request))
        } else if now >= (startedAt ?? now) + settings.settle {
            actions.append(contentsOf: becomeReady(now: now))
        }
        return actions
    }

    private mutating func becomeReady(now: WallMillis) -> [Action] {
        var actions: [Action] = []
        setPhase(.ready)
        let dropped = orphanCount
        orphans.removeAll()
        orphanCount = 0
        if dropped > 0 { actions.append(.droppedOrphans(dropped)) }
        actions.append(.becameReady(transferred: transferred, elapsed: now - (startedAt ?? now)))
        return actions
    }

    // MARK: - membership

    /// A member joined the view.
    mutating func onMemberAdded(_ member: Member, now: WallMillis) -> [Action] {
        var actions: [Action] = []
        guard member.id != local, !members.contains(member) else { return actions }
        setMembers(members + [member])
        let waiting = parked.filter { $0.member == member.id }
        parked.removeAll { $0.member == member.id }
        for request in waiting {
            actions.append(serve(to: member.id, request: request.request))
        }
        switch phase {
        case .starting:
            actions.append(contentsOf: pickSource(now: now))
        case .transferring:
            break
        case .catchingUp:
            if let pull = pull(from: member.id) { actions.append(pull) }
        case .ready:
            if let pull = pull(from: member.id) { actions.append(pull) }
            // The member may have missed changes while it was away (a freeze, a partition): it
            // pulls what differs from this node's digest, and answers with what differs on its side.
            actions.append(.sendDigest(to: member.id, items: digest(), reply: false))
        }
        return actions
    }

    /// Asks a member for its entries, to merge them, unless this node has them already or is
    /// asking already.
    private mutating func pull(from member: MemberID) -> Action? {
        guard !covered.contains(member), !pulls.values.contains(member) else { return nil }
        let request = nextRequest
        nextRequest += 1
        pulls[request] = member
        return .requestTransfer(to: member, request: request)
    }

    /// While catching up: ready once every pull has been answered, has failed, or its member left.
    private mutating func readyIfCaughtUp(now: WallMillis) -> [Action] {
        guard phase == .catchingUp, pulls.isEmpty else { return [] }
        return becomeReady(now: now)
    }

    /// A member left the view (gracefully or declared dead).
    mutating func onMemberRemoved(_ id: MemberID, now: WallMillis) -> [Action] {
        var actions: [Action] = []
        setMembers(members.filter { $0.id != id })
        parked.removeAll { $0.member == id }
        pulls = pulls.filter { $0.value != id }
        keyPulls = keyPulls.filter { $0.value != id }
        // Whatever this node pulled from it before, it may change while away: pulled again
        // when it returns.
        covered.remove(id)
        if case .transferring(let source, _) = phase, source == id {
            declined.insert(id)
            setPhase(.starting)
            actions.append(contentsOf: pickSource(now: now))
        }
        actions.append(contentsOf: readyIfCaughtUp(now: now))
        return actions
    }

    // MARK: - serving

    /// A member asks for all entries. Answered at once (whatever this node's own phase), or
    /// as soon as the member is in the view, so that every change after the snapshot is sent
    /// to it.
    mutating func onTransferRequest(from member: MemberID, request: UInt64) -> [Action] {
        var actions: [Action] = []
        if members.contains(where: { $0.id == member }) {
            actions.append(serve(to: member, request: request))
        } else {
            parked.append((member, request))
            if parked.count > settings.maxParked { parked.removeFirst(parked.count - settings.maxParked) }
        }
        return actions
    }

    private func serve(to member: MemberID, request: UInt64) -> Action {
        .serveTransfer(to: member, request: request, snapshot: entries, sourceReady: isReady)
    }

    // MARK: - receiving

    /// Whether this node asked `source` for a transfer under `request` and waits for it.
    func expectsBatch(from source: MemberID, request: UInt64) -> Bool {
        if case .transferring(let current, let expected) = phase, current == source, expected == request { return true }
        return pulls[request] == source
    }

    /// A batch of a transfer arrived. Only a batch of a transfer this node asked that member
    /// for is merged: any other (unsolicited, from another member than the one asked, or late)
    /// is refused, so a member cannot push entries into another's store by transfer.
    mutating func onTransferBatch(
        from source: MemberID,
        request: UInt64,
        entries batch: [String: Entry],
        last: Bool,
        sourceReady: Bool,
        now: WallMillis
    ) -> [Action] {
        guard expectsBatch(from: source, request: request) else {
            return [.refused("a transfer batch (request \(request), \(batch.count) entries) from \(source), which this node did not ask for it")]
        }
        var actions = merge(batch, now: now)
        if case .transferring(let current, let expected) = phase, current == source, expected == request {
            lastProgress = now
            transferred += batch.count
            if last {
                if sourceReady {
                    covered = [source]
                    setPhase(.catchingUp)
                    for member in members where member.id != source {
                        if let pull = pull(from: member.id) { actions.append(pull) }
                    }
                    actions.append(contentsOf: readyIfCaughtUp(now: now))
                } else {
                    declined.insert(source)
                    setPhase(.starting)
                    actions.append(contentsOf: pickSource(now: now))
                }
            }
        } else if pulls[request] == source {
            lastProgress = now
            if last {
                // The member served this copy with this node in its view: every change it made
                // before is in the copy, every later one is sent here.
                pulls[request] = nil
                covered.insert(source)
                actions.append(contentsOf: readyIfCaughtUp(now: now))
            }
        }
        return actions
    }

    /// A transfer request could not be delivered (or the member has no such store).
    mutating func onTransferRequestFailed(to member: MemberID, request: UInt64, now: WallMillis) -> [Action] {
        var actions: [Action] = []
        pulls[request] = nil
        if case .transferring(let source, let expected) = phase, source == member, expected == request {
            declined.insert(member)
            setPhase(.starting)
            actions.append(contentsOf: pickSource(now: now))
        }
        actions.append(contentsOf: readyIfCaughtUp(now: now))
        return actions
    }

    // MARK: - time

    /// Periodic work: expiry, the settle deadline, stalled transfers.
    mutating func onTick(now: WallMillis) -> [Action] {
        var actions = sweep(now: now)
        switch phase {
        case .starting:
            actions.append(contentsOf: pickSource(now: now))
        case .transferring(let source, _):
            if now - lastProgress >= settings.stallTimeout {
                declined.insert(source)
                setPhase(.starting)
                actions.append(contentsOf: pickSource(now: now))
            }
        case .catchingUp:
            // Pulls that make no progress do not hold the node back for ever; their members stay
            // uncovered, and a late answer is still merged.
            if now - lastProgress >= settings.stallTimeout {
                actions.append(contentsOf: becomeReady(now: now))
            }
        case .ready:
            actions.append(contentsOf: periodicAntiEntropy(now: now))
        }
        return actions
    }
}
