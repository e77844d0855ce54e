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

    /// Applies a local change and replicates it.
    ///
    /// - Throws: ``CohortError/Code/notFound`` when the key does not exist and the change
    ///   cannot create it, ``CohortError/Code/duplicate`` when `mustCreate` and it exists,
    ///   ``CohortError/Code/codecFailure`` when the change does not encode (nothing is applied),
    ///   or the channel's error when nothing could be sent.
    func commit(_ key: String, _ delta: Entry.Delta, mustCreate: Bool = false) async throws -> ReplicationReport {
        var delta = delta
        delta.stamp = state.nextStamp(for: key)
        let body = try codec.encodeValue(delta, what: "a change of '\(key)' in store '\(settings.name)'")
        switch state.onLocalDelta(key, delta, mustCreate: mustCreate, now: wall.now) {
        case .failure(.notFound):
            throw CohortError(.notFound, "'\(key)' does not exist in store '\(settings.name)' (never created, removed, or expired)")
        case .failure(.exists):
            throw CohortError(.duplicate, "'\(key)' already exists in store '\(settings.name)'")
        case .success(let actions):
            perform(actions)
        }
        guard !channel.view.members.isEmpty else { return ReplicationReport() }
        let started = wall.clock.now
        let report = try await channel.send(ReplicaUpdate(store: settings.name, key: key, body: body), to: .all, options: settings.sendOptions)
        observer.replicated(body.readableBytes * report.succeeded.count, wall.clock.now - started)
        return ReplicationReport(send: report)
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
            await applyRemote(update.key, delta)
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

    private func applyRemote(_ key: String, _ delta: Entry.Delta) {
        perform(state.onRemoteDelta(key, delta, now: wall.now))
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
        }
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
