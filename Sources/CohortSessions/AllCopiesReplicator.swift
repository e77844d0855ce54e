import Cohort
import Logging
import NIOCore
import ServiceLifecycle

/// The shell around ``AllCopiesState``: applies local changes and sends them to every member,
/// applies changes from others, runs the state transfer, and expires entries on its clock.
///
/// Message handlers only record and return; transfers are sent from child tasks of ``run()``,
/// so no handler ever waits for a round trip (no nested synchronous calls, no deadlock).
actor AllCopiesReplicator<Entry: ReplicatedEntry>: ReplicaEndpoint {
    enum Job: Sendable {
        case request(to: MemberID, request: UInt64)
        case serve(to: MemberID, request: UInt64, snapshot: [String: Entry], sourceReady: Bool)
        case digest(to: MemberID, items: [String: DigestItem], reply: Bool)
        case requestKeys(from: MemberID, request: UInt64, keys: [String])
        case serveKeys(to: MemberID, request: UInt64, entries: [String: Entry], deleted: [String: Stamp])
    }

    nonisolated let settings: ReplicatorSettings
    nonisolated let channel: GroupChannel
    nonisolated let codec: any MessageCodec
    nonisolated let wall: WallClock
    nonisolated let logger: Logger
    nonisolated let observer: ReplicaObserver<Entry>
    /// Counts and logs (rate-limited) what other members send that is refused.
    nonisolated let input: ReplicaInputLog
    private var state: AllCopiesState<Entry>
    private var readyWaiters: [CheckedContinuation<Void, any Error>] = []
    private var finished = false
    private var runStarted: ContinuousClock.Instant
    private var settleTicked = false
    private var jobCount = JobCount()
    nonisolated private let jobs: AsyncStream<Job>
    nonisolated private let jobInput: AsyncStream<Job>.Continuation

    init(settings: ReplicatorSettings, channel: GroupChannel, codec: any MessageCodec, clock: any CohortClock, logger: Logger, observer: ReplicaObserver<Entry>) {
        self.settings = settings
        self.channel = channel
        self.codec = codec
        self.wall = WallClock(clock: clock)
        self.runStarted = clock.now
        self.logger = logger
        self.observer = observer
        self.input = ReplicaInputLog(store: settings.name, logger: logger, clock: clock)
        self.state = AllCopiesState(local: channel.localMember.id, settings: .init(settings))
        (jobs, jobInput) = AsyncStream.makeStream(of: Job.self)
    }

    // MARK: - lifecycle

    /// Runs until ``shutdown()`` or graceful shutdown of the service group.
    func run() async throws {
        runStarted = wall.clock.now
        let router = try ReplicationRouter.router(for: channel)
        let events = channel.membershipEvents()
        try router.register(settings.name, self)
        defer { router.unregister(settings.name) }
        perform(state.onStart(members: channel.view.members, now: wall.now))
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
                        await self.perform(job)
                        await self.jobFinished()
                    }
                }
                group.cancelAll()
            }
        } onGracefulShutdown: { [jobInput] in
            jobInput.finish()
        }
        finished = true
        let waiters = readyWaiters
        readyWaiters.removeAll()
        for waiter in waiters {
            waiter.resume(throwing: CohortError(.notRunning, "store '\(settings.name)' stopped before it was ready"))
        }
        for waiter in jobCount.drain() { waiter.resume() }
    }

    /// Stops ``run()``.
    nonisolated func shutdown() { jobInput.finish() }

    /// Before a graceful stop: every member holds every entry already (a synchronous write
    /// returned only once they had it), so nothing moves; waits until what this node queued
    /// (transfers it serves, anti-entropy) is sent.
    func handOff() async -> Int {
        await waitUntilIdle()
        return 0
    }

    /// Returns once the store has its entries (after the state transfer).
    func waitUntilReady() async throws {
        if state.isReady { return }
        if finished { throw CohortError(.notRunning, "store '\(settings.name)' is not running") }
        try await withCheckedThrowingContinuation { readyWaiters.append($0) }
    }

    var isReady: Bool { state.isReady }

    /// Returns once no state transfer this node serves or requests is queued or under way
    /// (or the store stopped).
    ///
    /// - Returns: whether anything was pending (false: it was idle already).
    @discardableResult
    func waitUntilIdle() async -> Bool {
        if jobCount.pending == 0 || finished { return false }
        await withCheckedContinuation { jobCount.wait($0) }
        return true
    }

    private func jobFinished() {
        for waiter in jobCount.finished() { waiter.resume() }
    }

    // MARK: - reads

    /// The live entry of a key.
    func entry(_ key: String) -> Entry? { state.live(key, now: wall.now) }

    /// Every live entry.
    func entries() -> [String: Entry] {
        let now = wall.now
        return state.entries.filter { entry in entry.value.deadline.map { $0 > now } ?? true }
    }

    /// How many entries the node holds (expired ones not swept yet included).
    var count: Int { state.entries.count }

    // MARK: - changes

    /// Applies a local change and replicates it under a write concern.
    ///
    /// In synchronous mode the change is sent first and applied here only once its concern is
    /// met: a write that fails leaves this node's copy as it was, so the caller's retry computes
    /// the same change again (and gets a higher stamp, so it replaces whatever the failed attempt
    /// left on some members). In asynchronous mode it is applied here first, then queued.
    ///
    /// - Parameters:
    ///   - base: the newest stamp of the copy the change was computed from (a session as the
    ///     request read it); nil: this node's copy now. Members that hold a newer change from
    ///     another writer refuse the change as a conflict.
    ///   - concern: nil uses the store's.
    /// - Throws: ``CohortError/Code/notFound`` when the key does not exist and the change
    ///   cannot create it, ``CohortError/Code/duplicate`` when `mustCreate` and it exists,
    ///   ``CohortError/Code/codecFailure`` when the change does not encode (nothing is applied),
    ///   ``CohortError/Code/noQuorum`` when the split-brain policy refuses writes here,
    ///   ``CohortError/Code/partialFailure`` when the write concern is not met, or the channel's
    ///   error when nothing could be sent.
    func commit(_ key: String, _ delta: Entry.Delta, mustCreate: Bool = false, base: Stamp? = nil, concern: WriteConcern? = nil) async throws -> ReplicationReport {
        try settings.splitBrain.checkWrite(channel, store: settings.name)
        let concern = concern ?? settings.writeConcern
        var delta = delta
        delta.stamp = state.issueStamp(for: key)
        let base = base ?? state.latestStamp(of: key)
        let body = try codec.encodeValue(delta, what: "a change of '\(key)' in store '\(settings.name)'")
        switch state.check(key, delta, mustCreate: mustCreate, now: wall.now) {
        case .notFound:
            throw CohortError(.notFound, "'\(key)' does not exist in store '\(settings.name)' (never created, removed, or expired)")
        case .exists:
            throw CohortError(.duplicate, "'\(key)' already exists in store '\(settings.name)'")
        case nil:
            break
        }
        let synchronous = settings.mode == .synchronous
        if !synchronous { applyLocal(key, delta, mustCreate: mustCreate) }
        guard !channel.view.members.isEmpty else {
            if synchronous { applyLocal(key, delta, mustCreate: mustCreate) }
            return ReplicationReport()
        }
        let started = wall.clock.now
        let update = ReplicaUpdate(store: settings.name, key: key, body: body, base: base)
        let report = try await channel.send(update, to: .all, options: settings.sendOptions(concern))
        observer.replicated(body.readableBytes * report.succeeded.count, wall.clock.now - started)
        let view = channel.view
        if let failures = concern.unmet(report, current: Set(view.members.map(\.id)), excuseStarting: true) {
            // A member that refused the change (a conflict: its copy is newer) has what this
            // node missed: pull the key from it.
            for failure in report.failures {
                if case .remoteFailure = failure.outcome {
                    perform(state.pullKeys([key], from: failure.member))
                }
            }
            let error = CohortError.concernNotMet(
                concern, key: key, store: settings.name, report: report, failures: failures,
                names: { id in view.member(id)?.name ?? "\(id)" }
            )
            observer.failure(.concern, 1, error)
            throw error
        }
        if synchronous { applyLocal(key, delta, mustCreate: mustCreate) }
        return ReplicationReport(send: report)
    }

    private func applyLocal(_ key: String, _ delta: Entry.Delta, mustCreate: Bool) {
        // Checked before the send; a change that arrived meanwhile (a deletion) can still refuse
        // it here, which changes nothing the members did not decide already.
        if case .success(let actions) = state.onLocalDelta(key, delta, mustCreate: mustCreate, now: wall.now) {
            perform(actions)
        }
    }

    // MARK: - receiving

    nonisolated func receive(_ message: any ReplicaMessage, from sender: Member) async throws {
        switch message {
        case let update as ReplicaUpdate:
            let delta: Entry.Delta
            do {
                delta = try codec.decodeValue(Entry.Delta.self, from: update.body, what: "a change of '\(update.key)' from \(sender.name)")
            } catch {
                observer.failure(.codec, 1, error)
                input.decodeFailed("ReplicaUpdate", from: sender, error)
                throw error
            }
            try await applyRemote(update.key, delta, base: update.base, from: sender)
        case let digest as ReplicaDigest:
            let items: [String: DigestItem]
            do {
                items = try codec.decodeValue([String: DigestItem].self, from: digest.body, what: "a digest from \(sender.name)")
            } catch {
                observer.failure(.codec, 1, error)
                input.decodeFailed("ReplicaDigest", from: sender, error)
                throw error
            }
            await digestReceived(items, digest, from: sender.id)
        case let request as ReplicaKeysRequest:
            await keysRequested(by: sender.id, request: request.request, keys: request.keys)
        case let reply as ReplicaKeysReply:
            let entries: [String: Entry]
            do {
                entries = try codec.decodeValue([String: Entry].self, from: reply.entries, what: "a keys reply from \(sender.name)")
            } catch {
                observer.failure(.codec, 1, error)
                input.decodeFailed("ReplicaKeysReply", from: sender, error)
                throw error
            }
            try await applyKeys(reply, entries: entries, from: sender.id)
        case let request as ReplicaTransferRequest:
            await transferRequested(by: sender.id, request: request.request)
        case let batch as ReplicaTransferBatch:
            let entries: [String: Entry]
            do {
                entries = try codec.decodeValue([String: Entry].self, from: batch.body, what: "transfer batch \(batch.sequence) from \(sender.name)")
            } catch {
                observer.failure(.codec, 1, error)
                input.decodeFailed("ReplicaTransferBatch", from: sender, error)
                throw error
            }
            try await applyBatch(batch, entries: entries, from: sender.id)
        default:
            throw CohortError(.internal, "store '\(settings.name)' keeps a copy everywhere and does not take \(type(of: message)) messages; two nodes run different kinds of store under one name")
        }
    }

    private func applyRemote(_ key: String, _ delta: Entry.Delta, base: Stamp?, from sender: Member) throws {
        if let newer = state.conflict(key, delta, base: base) {
            // The writer computed the change from a copy that is behind this one (it was away:
            // frozen, cut off): refused, so that its caller gets an error instead of an
            // acknowledgement of a write that would undo newer ones. The writer pulls this copy.
            throw CohortError(
                .partialFailure,
                "conflict: '\(key)' in store '\(settings.name)' on \(channel.configuration.name) holds \(newer), newer than the copy \(sender.name) changed (\(base.map { "\($0)" } ?? "none")); \(sender.name) must catch up first"
            )
        }
        perform(state.onRemoteDelta(key, delta, now: wall.now))
    }

    private func digestReceived(_ items: [String: DigestItem], _ digest: ReplicaDigest, from member: MemberID) {
        perform(state.onDigest(from: member, items: items, reply: digest.reply, after: digest.after, through: digest.through))
    }

    private func keysRequested(by member: MemberID, request: UInt64, keys: [String]) {
        perform(state.onKeysRequest(from: member, request: request, keys: keys))
    }

    private func applyKeys(_ reply: ReplicaKeysReply, entries: [String: Entry], from member: MemberID) throws {
        let actions = state.onKeysReply(from: member, request: reply.request, entries: entries, deleted: reply.deleted, now: wall.now)
        perform(actions)
        for case .refused(let what) in actions {
            throw CohortError(.unknownMember, "store '\(settings.name)' refused \(what)")
        }
    }

    private func keysRequestFailed(_ request: UInt64) {
        state.onKeysRequestFailed(request: request)
    }

    private func transferRequested(by member: MemberID, request: UInt64) {
        perform(state.onTransferRequest(from: member, request: request))
    }

    /// Merges a batch this node asked for; throws (so the sender sees a failure) for any other.
    private func applyBatch(_ batch: ReplicaTransferBatch, entries: [String: Entry], from source: MemberID) throws {
        let actions = state.onTransferBatch(
            from: source, request: batch.request, entries: entries, last: batch.last,
            sourceReady: batch.sourceReady, now: wall.now
        )
        perform(actions)
        for case .refused(let what) in actions {
            throw CohortError(.unknownMember, "store '\(settings.name)' refused \(what)")
        }
    }

    private func requestFailed(_ member: MemberID, request: UInt64) {
        perform(state.onTransferRequestFailed(to: member, request: request, now: wall.now))
    }

    private func membership(_ event: MembershipEvent) {
        switch event {
        case .added(let member):
            perform(state.onMemberAdded(member, now: wall.now))
        case .removed(let member), .left(let member):
            perform(state.onMemberRemoved(member.id, now: wall.now))
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
        perform(state.onTick(now: wall.now))
    }

    // MARK: - actions

    private func perform(_ actions: [AllCopiesState<Entry>.Action]) {
        var events: [ReplicaEvent<Entry>] = []
        for action in actions {
            switch action {
            case .event(let event):
                events.append(event)
            case .requestTransfer(let member, let request):
                enqueue(.request(to: member, request: request))
            case .serveTransfer(let member, let request, let snapshot, let ready):
                enqueue(.serve(to: member, request: request, snapshot: snapshot, sourceReady: ready))
            case .becameReady(let transferred, _):
                let elapsed = wall.clock.now - runStarted
                logger.debug("store \(settings.name) ready: \(transferred) entries transferred, \(elapsed) after start")
                observer.ready(transferred, elapsed)
                let waiters = readyWaiters
                readyWaiters.removeAll()
                for waiter in waiters { waiter.resume() }
            case .droppedOrphans(let count):
                observer.failure(.orphans, count, CohortError(.notFound, "\(count) change(s) for unknown keys discarded"))
            case .refused(let what):
                observer.failure(.refused, 1, CohortError(.unknownMember, what))
                input.refused(what)
            case .sendDigest(let member, let items, let reply):
                enqueue(.digest(to: member, items: items, reply: reply))
            case .requestKeys(let member, let request, let keys):
                enqueue(.requestKeys(from: member, request: request, keys: keys))
            case .serveKeys(let member, let request, let entries, let deleted):
                enqueue(.serveKeys(to: member, request: request, entries: entries, deleted: deleted))
            }
            if case .event(.conflict(let key, let fields, _)) = action {
                logger.info("store \(settings.name): conflict on '\(key)' (\(fields.joined(separator: ", "))) resolved by stamp")
                observer.failure(.conflict, 1, CohortError(.partialFailure, "conflict on '\(key)'"))
            }
        }
        if !events.isEmpty { observer.events(events) }
    }

    private func enqueue(_ job: Job) {
        if case .enqueued = jobInput.yield(job) { jobCount.queued() }
    }

    private nonisolated func perform(_ job: Job) async {
        switch job {
        case .request(let member, let request):
            let message = ReplicaTransferRequest(store: settings.name, request: request)
            let report = try? await channel.send(message, to: .member(member), options: settings.controlOptions)
            if report?.allSucceeded != true {
                logger.debug("store \(settings.name): transfer request to \(member) failed: \(report.map { "\($0)" } ?? "channel stopped")")
                await requestFailed(member, request: request)
            }
        case .serve(let member, let request, let snapshot, let ready):
            await serve(snapshot, to: member, request: request, sourceReady: ready)
        case .digest(let member, let items, let reply):
            await sendDigest(items, to: member, reply: reply)
        case .requestKeys(let member, let request, let keys):
            let message = ReplicaKeysRequest(store: settings.name, request: request, keys: keys)
            let report = try? await channel.send(message, to: .member(member), options: settings.controlOptions)
            if report?.allSucceeded != true { await keysRequestFailed(request) }
        case .serveKeys(let member, let request, let entries, let deleted):
            do {
                let body = try codec.encodeValue(entries, what: "a keys reply")
                let message = ReplicaKeysReply(store: settings.name, request: request, entries: body, deleted: deleted)
                _ = try await channel.send(message, to: .member(member), options: settings.controlOptions)
            } catch {
                logger.debug("store \(settings.name): keys reply to \(member) failed: \(error)")
            }
        }
    }

    /// Sends a digest in batches of sorted keys; each batch says which key range it covers, so
    /// the receiver can tell which of its keys this node lacks.
    private nonisolated func sendDigest(_ items: [String: DigestItem], to member: MemberID, reply: Bool) async {
        let keys = items.keys.sorted()
        let size = max(1, settings.batchSize)
        var start = 0
        repeat {
            let end = min(keys.count, start + size)
            var batch: [String: DigestItem] = [:]
            batch.reserveCapacity(end - start)
            for key in keys[start..<end] { batch[key] = items[key] }
            let after = start == 0 ? nil : keys[start - 1]
            let through = end >= keys.count ? nil : keys[end - 1]
            do {
                let body = try codec.encodeValue(batch, what: "a digest")
                let message = ReplicaDigest(store: settings.name, body: body, reply: reply, after: after, through: through)
                let report = try await channel.send(message, to: .member(member), options: settings.controlOptions)
                guard report.allSucceeded else { return }
            } catch {
                logger.debug("store \(settings.name): digest to \(member) failed: \(error)")
                return
            }
            start = end
        } while start < keys.count
    }

    /// Sends a snapshot in batches. Up to ``transferWindow`` batches are in flight (the next
    /// one is encoded while the receiver applies the previous ones); the last batch, which
    /// ends the transfer, goes only after every other batch was applied.
    private nonisolated func serve(_ snapshot: [String: Entry], to member: MemberID, request: UInt64, sourceReady: Bool) async {
        let name = settings.name
        let channel = self.channel
        let codec = self.codec
        let options = settings.controlOptions
        @Sendable func send(_ batch: [String: Entry], sequence: UInt32, last: Bool) async throws {
            let body = try codec.encodeValue(batch, what: "transfer batch \(sequence)")
            let message = ReplicaTransferBatch(
                store: name, request: request, sequence: sequence, body: body, last: last,
                sourceReady: sourceReady
            )
            let report = try await channel.send(message, to: .member(member), options: options)
            guard report.allSucceeded else { throw CohortError(.connectionFailed, "\(report)") }
        }
        do {
            var batch: [String: Entry] = [:]
            batch.reserveCapacity(min(snapshot.count, settings.batchSize))
            var sequence: UInt32 = 0
            var remaining = snapshot.count
            try await withThrowingTaskGroup(of: Void.self) { group in
                var inFlight = 0
                for (key, entry) in snapshot {
                    batch[key] = entry
                    remaining -= 1
                    guard batch.count >= settings.batchSize, remaining > 0 else { continue }
                    if inFlight >= Self.transferWindow {
                        try await group.next()
                        inFlight -= 1
                    }
                    let full = batch
                    let number = sequence
                    group.addTask { try await send(full, sequence: number, last: false) }
                    inFlight += 1
                    sequence += 1
                    batch.removeAll(keepingCapacity: true)
                }
                try await group.waitForAll()
            }
            try await send(batch, sequence: sequence, last: true)
        } catch {
            observer.failure(.transfer, 1, error)
            logger.warning("store \(settings.name): state transfer to \(member) stopped: \(error)")
        }
    }

    /// State-transfer batches in flight per transfer.
    static var transferWindow: Int { 4 }
}
