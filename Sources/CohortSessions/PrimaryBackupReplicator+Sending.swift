import Cohort
import Logging
import NIOCore

extension PrimaryBackupReplicator {
    /// Locations per ``LocationsBatch``.
    static var locationBatchSize: Int { 5_000 }

    /// Sends the messages of a local change concurrently and waits for them (in synchronous
    /// mode, until every receiver applied them).
    ///
    /// A backup that failed to apply the change (``BackupUpdate``) and is still a member gets a
    /// full copy instead (``BackupStore``), which also repairs any change it missed before; a
    /// backup that fails that too is reported (and replaced by the state). The report lists the
    /// data sends only (copies and changes), which is what a write concern judges.
    func sendNow(_ actions: [Action], options: SendOptions? = nil) async throws -> ReplicationReport {
        let started = wall.clock.now
        let options = options ?? settings.sendOptions
        let outcomes = try await withThrowingTaskGroup(of: (Action, SendReport?, Int).self) { group in
            for action in actions {
                group.addTask { try await self.transmit(action, options: options) }
            }
            var merged = SendReport()
            var bytes = 0
            var retries: [(key: String, members: [MemberID])] = []
            for try await (action, report, size) in group {
                guard let report else { continue }
                bytes += size * report.succeeded.count
                switch action {
                case .update(let key, _, _):
                    let current = Set(channel.view.members.map(\.id))
                    // A refusal as a conflict (the member holds a newer copy) is not repaired
                    // by sending this node's copy: it stays a failure.
                    let failed = report.failures.filter { current.contains($0.member) && !$0.outcome.isConflict }.map(\.member)
                    merged.outcomes.append(contentsOf: report.outcomes.filter { !failed.contains($0.member) })
                    if !failed.isEmpty { retries.append((key, failed)) }
                case .store:
                    merged.outcomes.append(contentsOf: report.outcomes)
                    if !report.allSucceeded { failed(action, report: report) }
                default:
                    if !report.allSucceeded { failed(action, report: report) }
                }
            }
            for retry in retries {
                guard let entry = state.copies[retry.key], let location = state.locations[retry.key] else {
                    merged.outcomes.append(contentsOf: retry.members.map { ($0, MemberOutcome.remoteFailure("the key is gone here")) })
                    continue
                }
                let action = Action.store(key: retry.key, entry: entry, location: location, to: retry.members)
                let (_, report, size) = try await transmit(action, options: options)
                guard let report else { continue }
                bytes += size * report.succeeded.count
                merged.outcomes.append(contentsOf: report.outcomes)
                if !report.allSucceeded { failed(action, report: report) }
            }
            return (merged, bytes)
        }
        if outcomes.0.count > 0 { observer.replicated(outcomes.1, wall.clock.now - started) }
        return ReplicationReport(send: outcomes.0)
    }

    /// Sends a queued action (from a child task of `run()`); failures go back to the state.
    nonisolated func send(_ action: Action) async {
        do {
            if case .serveLocations(let member, let request, let locations) = action {
                try await serveLocations(locations, to: member, request: request)
                return
            }
            let (_, report, _) = try await transmit(action, options: settings.controlOptions)
            if let report, !report.allSucceeded { await failed(action, report: report) }
        } catch {
            logger.debug("store \(settings.name): sending failed: \(error)")
            await failed(action, report: nil)
        }
    }

    /// Sends one action's message; returns the report (nil when there was nobody to send to)
    /// and the payload size.
    private nonisolated func transmit(_ action: Action, options: SendOptions) async throws -> (Action, SendReport?, Int) {
        let name = settings.name
        switch action {
        case .store(let key, let entry, let location, let members):
            guard !members.isEmpty else { return (action, nil, 0) }
            let body = try codec.encodeValue(entry, what: "a copy of '\(key)'")
            let report = try await channel.send(BackupStore(store: name, key: key, body: body, location: location), to: .members(members), options: options)
            return (action, report, body.readableBytes)
        case .update(let key, let delta, let members):
            guard !members.isEmpty else { return (action, nil, 0) }
            let body = try codec.encodeValue(delta, what: "a change of '\(key)'")
            let report = try await channel.send(BackupUpdate(store: name, key: key, body: body), to: .members(members), options: options)
            return (action, report, body.readableBytes)
        case .locate(let locations, let members):
            guard !members.isEmpty, !locations.isEmpty else { return (action, nil, 0) }
            let report = try await channel.send(LocationUpdate(store: name, locations: locations), to: .members(members), options: options)
            return (action, report, 0)
        case .removeLocations(let keys, let reason, let members):
            guard !members.isEmpty, !keys.isEmpty else { return (action, nil, 0) }
            let report = try await channel.send(LocationRemoval(store: name, keys: keys, reason: reason), to: .members(members), options: options)
            return (action, report, 0)
        case .requestLocations(let member, let request):
            let report = try await channel.send(LocationsRequest(store: name, request: request), to: .member(member), options: settings.controlOptions)
            return (action, report, 0)
        case .reply(let member, let request, let key, let entry, let location):
            let body = try entry.map { try codec.encodeValue($0, what: "a copy of '\(key)'") }
            let reply = FetchReply(store: name, request: request, key: key, body: body, location: location)
            let report = try await channel.send(reply, to: .member(member), options: settings.controlOptions)
            return (action, report, body?.readableBytes ?? 0)
        case .serveLocations, .becameReady, .event, .dropped, .refused:
            return (action, nil, 0)
        }
    }

    private nonisolated func serveLocations(_ locations: [String: Location], to member: MemberID, request: UInt64) async throws {
        var batch: [String: Location] = [:]
        var remaining = locations.count
        for (key, location) in locations {
            batch[key] = location
            remaining -= 1
            if batch.count >= Self.locationBatchSize, remaining > 0 {
                let message = LocationsBatch(store: settings.name, request: request, locations: batch, last: false)
                let report = try await channel.send(message, to: .member(member), options: settings.controlOptions)
                guard report.allSucceeded else { throw CohortError(.connectionFailed, "\(report)") }
                batch.removeAll(keepingCapacity: true)
            }
        }
        let message = LocationsBatch(store: settings.name, request: request, locations: batch, last: true)
        _ = try await channel.send(message, to: .member(member), options: settings.controlOptions)
    }
}
