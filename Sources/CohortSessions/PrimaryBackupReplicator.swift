import Cohort
import Logging
import NIOCore
import ServiceLifecycle

/// The shell around ``PrimaryBackupState``: local changes go to the backups (and new locations
/// to everyone), misses fetch the entry from its holder, and membership changes trigger
/// failover and re-backup.
///
/// Handlers never wait for a round trip: what a handler must send (a fetch reply, a copy for a
/// new backup, a location update) is queued and sent by a child task of ``run()``.
actor PrimaryBackupReplicator<Entry: ReplicatedEntry>: ReplicaEndpoint {
    typealias Action = PrimaryBackupState<Entry>.Action

    /// A fetch this node sent: waiting for the send, the reply, or both.
    private enum FetchSlot {
        case sent(target: MemberID)
        case replied(FetchReply?)
        case waiting(target: MemberID, CheckedContinuation<FetchReply?, Never>)
    }

    nonisolated let settings: ReplicatorSettings
    nonisolated let channel: GroupChannel
    nonisolated let codec: any MessageCodec
    nonisolated let wall: WallClock
    nonisolated let logger: Logger
    nonisolated let observer: ReplicaObserver<Entry>
    /// Counts and logs (rate-limited) what other members send that is refused.
    nonisolated let input: ReplicaInputLog
    var state: PrimaryBackupState<Entry>
    private var readyWaiters: [CheckedContinuation<Void, any Error>] = []
    private var finished = false
    private var runStarted: ContinuousClock.Instant
    private var settleTicked = false
    private var jobCount = JobCount()
    private var fetches: [UInt64: FetchSlot] = [:]
    private var nextFetch: UInt64 = 1
    nonisolated private let jobs: AsyncStream<Action>
    nonisolated private let jobInput: AsyncStream<Action>.Continuation

    init(settings: ReplicatorSettings, channel: GroupChannel, codec: any MessageCodec, clock: any CohortClock, logger: Logger, observer: ReplicaObserver<Entry>) {
        self.settings = settings
        self.channel = channel
        self.codec = codec
        self.wall = WallClock(clock: clock)
        self.runStarted = clock.now
        self.logger = logger
        self.observer = observer
        self.input = ReplicaInputLog(store: settings.name, logger: logger, clock: clock)
        self.state = PrimaryBackupState(
            local: channel.localMember.id,
            settings: .init(backups: settings.backups, settle: settings.settle.milliseconds, tombstoneRetention: settings.tombstoneRetention.milliseconds)
        )
        (jobs, jobInput) = AsyncStream.makeStream(of: Action.self)
    }

    var local: MemberID { state.local }

    // MARK: - lifecycle

    func run() async throws {
        runStarted = wall.clock.now
        let router = try ReplicationRouter.router(for: channel)
        let events = channel.membershipEvents()
        try router.register(settings.name, self)
        defer { router.unregister(settings.name) }
        queue(perform(state.onStart(members: channel.view.members, now: wall.now)))
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await event in events { await self.membership(event) }
                }
                group.addTask { [wall] in
                    while !Task.isCancelled {
                        do { try await wall.clock.sleep(for: await self.nextTick()) } catch { return }
                        await self.tick()
                    }
                }
                for await job in jobs {
                    group.addTask {
                        await self.send(job)
                        await self.jobFinished()
                    }
                }
                group.cancelAll()
            }
        } onGracefulShutdown: { [jobInput] in
            jobInput.finish()
        }
        finished = true
        for waiter in readyWaiters {
            waiter.resume(throwing: CohortError(.notRunning, "store '\(settings.name)' stopped before it was ready"))
        }
        readyWaiters.removeAll()
        for (_, slot) in fetches {
            if case .waiting(_, let continuation) = slot { continuation.resume(returning: nil) }
        }
        fetches.removeAll()
        for waiter in jobCount.drain() { waiter.resume() }
    }

    nonisolated func shutdown() { jobInput.finish() }

    /// Before a graceful stop: moves ownership and copies of every key this node holds to other
    /// members (see ``PrimaryBackupState/onHandOff(now:)``) and waits until they applied them.
    ///
    /// - Returns: the keys whose new holders did not all confirm (0: everything is elsewhere).
    func handOff() async -> Int {
        reconcileView()
        let actions = perform(state.onHandOff(now: wall.now))
        guard !actions.isEmpty else { return 0 }
        var options = settings.controlOptions
        options.guarantee = .processed
        do {
            let report = try await sendNow(actions, options: options)
            return Set(report.failures.map(\.member)).isEmpty ? 0 : report.failures.count
        } catch {
            logger.warning("store \(settings.name): hand-off failed: \(error)")
            return actions.count
        }
    }

    func waitUntilReady() async throws {
        if state.isReady { return }
        if finished { throw CohortError(.notRunning, "store '\(settings.name)' is not running") }
        try await withCheckedThrowingContinuation { readyWaiters.append($0) }
    }

    // MARK: - reads

    /// The entry of a key: the local copy, or one fetched from a holder. With `take`, this
    /// node becomes the owner (the entry follows the requests).
    ///
    /// - Throws: ``CohortError/Code/timeout`` when the key has holders but none answered within
    ///   the fetch timeout (each holder is tried in turn), ``CohortError/Code/codecFailure`` when
    ///   the copy does not decode, ``CohortError/Code/noQuorum`` when the split-brain policy
    ///   refuses reads here. Nil means the key does not exist (or every holder left).
    func read(_ key: String, take: Bool) async throws -> Entry? {
        try settings.splitBrain.checkRead(channel, store: settings.name)
        reconcileView()
        let now = wall.now
        if let copy = state.live(key, now: now), !take || state.locations[key]?.owner == local { return copy }
        return try await fetch(key, take: take)
    }

    /// Every live copy this node owns.
    func ownedEntries() -> [String: Entry] {
        let now = wall.now
        return state.copies.filter { $0.value.deadline.map { $0 > now } ?? true && state.locations[$0.key]?.owner == local }
    }

    /// Every key of the location table.
    func keys() -> [String] { Array(state.locations.keys) }

    /// Where a key lives, as this node knows it.
    func location(of key: String) -> Location? { state.locations[key] }

    /// Fetches a key from its holders, one after another, each within ``ReplicatorSettings/fetchTimeout``.
    private func fetch(_ key: String, take: Bool) async throws -> Entry? {
        var tried = Set<MemberID>()
        var problems: [String] = []
        for _ in 0..<(Location.maxBackups + 2) {
            guard let location = state.locations[key] else { return nil }
            let holders = location.holders.filter { $0 != local && state.isAlive($0) }
            guard let target = holders.first(where: { !tried.contains($0) }) else {
                if let copy = state.live(key, now: wall.now) { return copy }
                guard !problems.isEmpty else { return nil }
                throw CohortError(
                    .timeout,
                    "no holder of '\(key)' in store '\(settings.name)' answered (\(problems.joined(separator: "; "))); the entry is not known to be lost — retry shortly"
                )
            }
            tried.insert(target)
            let name = channel.view.member(target)?.name ?? "\(target)"
            let request = nextFetch
            nextFetch += 1
            fetches[request] = .sent(target: target)
            let timer = Task { [wall, timeout = settings.fetchTimeout] in
                do { try await wall.clock.sleep(for: timeout) } catch { return }
                self.fetchTimedOut(request)
            }
            defer { timer.cancel() }
            let message = FetchRequest(store: settings.name, request: request, key: key, takeOwnership: take)
            let report = try? await channel.send(message, to: .member(target), options: settings.controlOptions)
            guard report?.allSucceeded == true else {
                fetches[request] = nil
                problems.append("\(name): \(report.map { "\($0)" } ?? "channel stopped")")
                continue
            }
            let reply: FetchReply? = await withCheckedContinuation { continuation in
                switch fetches[request] {
                case .replied(let reply):
                    fetches[request] = nil
                    continuation.resume(returning: reply)
                case .sent(let target):
                    fetches[request] = .waiting(target: target, continuation)
                default:
                    continuation.resume(returning: nil)
                }
            }
            guard let reply else {
                problems.append("\(name): no answer within \(settings.fetchTimeout)")
                continue
            }
            var entry: Entry?
            if let body = reply.body {
                do {
                    entry = try codec.decodeValue(Entry.self, from: body, what: "fetched '\(key)'")
                } catch {
                    observer.failure(.codec, 1, error)
                    input.decodeFailed("FetchReply", from: channel.view.member(target) ?? channel.localMember, error)
                    throw error
                }
            }
            queue(perform(state.onFetchReply(key, entry: entry, location: reply.location, now: wall.now)))
            if let entry { return entry }
            if reply.location == nil || reply.location == location { return nil }
        }
        return nil
    }

    /// A fetch's deadline passed: the fetch moves on to the next holder.
    private func fetchTimedOut(_ request: UInt64) {
        switch fetches[request] {
        case .waiting(_, let continuation):
            fetches[request] = nil
            continuation.resume(returning: nil)
        case .sent:
            fetches[request] = .replied(nil)
        default:
            break
        }
    }

    // MARK: - changes

    /// Applies a local change (taking ownership first when another node owns the key) and
    /// sends it to the backups, and new locations to everyone.
    ///
    /// The write concern judges the backups' copies: `all` needs every backup of the key,
    /// `majority` a majority of its holders, a count that many backups. A backup that failed to
    /// apply the change gets a full copy before the concern is judged (see ``sendNow(_:options:)``).
    func commit(_ key: String, _ delta: Entry.Delta, mustCreate: Bool, base: Stamp? = nil, concern: WriteConcern? = nil) async throws -> ReplicationReport {
        try settings.splitBrain.checkWrite(channel, store: settings.name)
        let concern = concern ?? settings.writeConcern
        for _ in 0..<3 {
            reconcileView()
            var delta = delta
            delta.stamp = state.nextEntryStamp(for: key)
            let now = wall.now
            switch state.onLocalCommit(key, delta, mustCreate: mustCreate, now: now) {
            case .success(let actions):
                let report = try await sendNow(perform(actions), options: settings.sendOptions(concern))
                let view = channel.view
                if let failures = concern.unmet(report.send, current: Set(view.members.map(\.id))) {
                    if failures.contains(where: { $0.outcome.isConflict }) {
                        // A holder has a newer copy (this node was away while the key was
                        // promoted and written elsewhere): this node's copy and placement are
                        // refreshed from the holders before the caller retries.
                        _ = try? await fetch(key, take: false)
                    }
                    let error = CohortError.concernNotMet(
                        concern, key: key, store: settings.name, report: report.send, failures: failures,
                        names: { id in view.member(id)?.name ?? "\(id)" }
                    )
                    observer.failure(.concern, 1, error)
                    throw error
                }
                return report
            case .failure(.notOwner):
                _ = try await fetch(key, take: true)
            case .failure(.notFound):
                throw CohortError(.notFound, "'\(key)' does not exist in store '\(settings.name)' (never created, removed, expired, or lost)")
            case .failure(.exists):
                throw CohortError(.duplicate, "'\(key)' already exists in store '\(settings.name)'")
            }
        }
        throw CohortError(.timeout, "could not take ownership of '\(key)' in store '\(settings.name)': its owner keeps changing")
    }

    // MARK: - receiving

    nonisolated func receive(_ message: any ReplicaMessage, from sender: Member) async throws {
        switch message {
        case let store as BackupStore:
            let entry = try decode(Entry.self, store.body, "a copy of '\(store.key)' from \(sender.name)", type: "BackupStore", from: sender)
            await apply { $0.onStore(store.key, entry: entry, location: store.location, now: $1) }
        case let update as BackupUpdate:
            let delta = try decode(Entry.Delta.self, update.body, "a change of '\(update.key)' from \(sender.name)", type: "BackupUpdate", from: sender)
            try await applyUpdate(update.key, delta, from: sender)
        case let update as LocationUpdate:
            await apply { $0.onLocate(update.locations, now: $1) }
        case let removal as LocationRemoval:
            await apply { $0.onRemoveLocations(removal.keys, reason: removal.reason, now: $1) }
        case let request as LocationsRequest:
            await apply { $0.onLocationsRequest(from: sender.id, request: request.request, now: $1) }
        case let batch as LocationsBatch:
            try await applyLocations(batch, from: sender.id)
        case let request as FetchRequest:
            await apply { $0.onFetchRequest(request.key, from: sender.id, request: request.request, take: request.takeOwnership, now: $1) }
        case let reply as FetchReply:
            try await fetchReplied(reply, from: sender.id)
        default:
            throw CohortError(.internal, "store '\(settings.name)' keeps primaries and backups and does not take \(type(of: message)) messages; two nodes run different kinds of store under one name")
        }
    }

    private nonisolated func decode<Value: Decodable>(_ type: Value.Type, _ body: ByteBuffer, _ what: String, type message: String, from sender: Member) throws -> Value {
        do {
            return try codec.decodeValue(type, from: body, what: what)
        } catch {
            observer.failure(.codec, 1, error)
            input.decodeFailed(message, from: sender, error)
            throw error
        }
    }

    private func apply(_ change: (inout PrimaryBackupState<Entry>, WallMillis) -> [Action]) {
        queue(perform(change(&state, wall.now)))
    }

    /// Applies a change from the key's owner, unless it was made from a copy that is behind this
    /// one (an owner that was frozen or cut off while the key was promoted elsewhere and written
    /// there): refused as a conflict, so that its caller gets an error instead of an
    /// acknowledgement of a write that the newer copy does not hold.
    private func applyUpdate(_ key: String, _ delta: Entry.Delta, from sender: Member) throws {
        if let newer = state.staleChange(key, delta) {
            throw CohortError(
                .partialFailure,
                "conflict: '\(key)' in store '\(settings.name)' on \(channel.configuration.name) holds \(newer), newer than the change \(sender.name) made (\(delta.stamp)); \(sender.name) must fetch the key first"
            )
        }
        queue(perform(state.onUpdate(key, delta: delta, now: wall.now)))
    }

    /// Applies a locations batch this node asked for; throws (so the sender sees a failure) for
    /// any other.
    private func applyLocations(_ batch: LocationsBatch, from member: MemberID) throws {
        let actions = state.onLocationsBatch(from: member, request: batch.request, locations: batch.locations, last: batch.last, now: wall.now)
        queue(perform(actions))
        for case .refused(let what) in actions {
            throw CohortError(.unknownMember, "store '\(settings.name)' refused \(what)")
        }
    }

    /// Hands a fetch reply to the fetch waiting for it — only when it comes from the member
    /// that fetch asked: a reply from anyone else (or for no fetch) is refused and counted.
    private func fetchReplied(_ reply: FetchReply, from sender: MemberID) throws {
        let asked: MemberID?
        switch fetches[reply.request] {
        case .waiting(let target, _), .sent(let target): asked = target
        default: asked = nil
        }
        guard let asked, asked == sender else {
            let what = "a fetch reply (request \(reply.request)) from \(sender), which this node did not ask"
            observer.failure(.refused, 1, CohortError(.unknownMember, what))
            input.refused(what)
            throw CohortError(.unknownMember, "store '\(settings.name)' refused \(what)")
        }
        switch fetches[reply.request] {
        case .waiting(_, let continuation):
            fetches[reply.request] = nil
            continuation.resume(returning: reply)
        case .sent:
            fetches[reply.request] = .replied(reply)
        default:
            break
        }
    }

    private func failFetches(to member: MemberID) {
        for (request, slot) in fetches {
            switch slot {
            case .waiting(member, let continuation):
                fetches[request] = nil
                continuation.resume(returning: nil)
            case .sent(member):
                fetches[request] = .replied(nil)
            default:
                break
            }
        }
    }

    private func membership(_ event: MembershipEvent) {
        switch event {
        case .added(let member):
            apply { $0.onMemberAdded(member, now: $1) }
        case .removed(let member), .left(let member):
            apply { $0.onMemberRemoved(member.id, now: $1) }
            failFetches(to: member.id)
        case .suspected, .recovered:
            break
        }
    }

    /// How long until the next tick: the settle deadline while starting, else the tick interval.
    private func nextTick() -> Duration {
        guard !state.isReady, !settleTicked else { return settings.tick }
        let remaining = state.startedAt.map { $0 + settings.settle.milliseconds - wall.now } ?? 0
        if remaining <= 0 { settleTicked = true }
        return min(settings.tick, .milliseconds(max(0, remaining)))
    }

    private func tick() {
        apply { $0.onTick(now: $1) }
    }

    /// Applies membership changes the channel already knows but whose events have not reached
    /// this actor yet, so a request right after a failure does not go to a dead owner.
    private func reconcileView() {
        let view = channel.view.members
        let known = Set(state.members.map(\.id))
        let current = Set(view.map(\.id))
        for member in state.members where !current.contains(member.id) {
            apply { $0.onMemberRemoved(member.id, now: $1) }
            failFetches(to: member.id)
        }
        for member in view where !known.contains(member.id) {
            apply { $0.onMemberAdded(member, now: $1) }
        }
    }

    func failed(_ action: Action, report: SendReport?) {
        switch action {
        case .requestLocations(let member, let request):
            apply { $0.onLocationsRequestFailed(to: member, request: request, now: $1) }
        case .store:
            for failure in report?.failures ?? [] {
                apply { $0.onStoreFailed(to: failure.member, now: $1) }
            }
        default:
            break
        }
    }

    /// Handles the non-network actions now and returns the ones that send.
    private func perform(_ actions: [Action]) -> [Action] {
        var sends: [Action] = []
        var events: [ReplicaEvent<Entry>] = []
        for action in actions {
            switch action {
            case .event(let event):
                events.append(event)
            case .becameReady:
                observer.ready(0, wall.clock.now - runStarted)
                for waiter in readyWaiters { waiter.resume() }
                readyWaiters.removeAll()
            case .dropped(let lost, let orphans):
                if lost > 0 { observer.failure(.lost, lost, CohortError(.notFound, "\(lost) key(s) lost: every holder left")) }
                if orphans > 0 { observer.failure(.orphans, orphans, CohortError(.notFound, "\(orphans) change(s) for copies this node does not hold")) }
            case .refused(let what):
                observer.failure(.refused, 1, CohortError(.unknownMember, what))
                input.refused(what)
            default:
                sends.append(action)
            }
        }
        if !events.isEmpty { observer.events(events) }
        observer.owned(state.ownedCount)
        return sends
    }

    private func queue(_ actions: [Action]) {
        for action in actions {
            if case .enqueued = jobInput.yield(action) { jobCount.queued() }
        }
    }

    /// Returns once membership changes the channel knows are applied and no message this node
    /// queued (copies, location updates, fetch replies) is waiting or under way (or the store
    /// stopped).
    ///
    /// - Returns: whether anything was pending (false: it was idle already).
    @discardableResult
    func waitUntilIdle() async -> Bool {
        reconcileView()
        if jobCount.pending == 0 || finished { return false }
        await withCheckedContinuation { jobCount.wait($0) }
        return true
    }

    private func jobFinished() {
        for waiter in jobCount.finished() { waiter.resume() }
    }
}
