import Cohort
import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// A check of ``TransportConformance`` or ``DiscoveryConformance`` that a plugin failed.
public struct PluginConformanceFailure: Error, CustomStringConvertible {
    /// What kind of plugin was checked.
    public let kind: PluginKind
    /// The plugin's name, as the caller gave it.
    public let plugin: String
    /// The check that failed, such as `probe of a live member`.
    public let check: String
    /// What was wrong.
    public let detail: String

    /// Creates a failure.
    public init(kind: PluginKind, plugin: String, check: String, detail: String) {
        self.kind = kind
        self.plugin = plugin
        self.check = check
        self.detail = detail
    }

    /// `transport 'NAME' fails 'CHECK': DETAIL`.
    public var description: String { "\(kind) '\(plugin)' fails '\(check)': \(detail)" }
}

/// A conformance suite for ``CohortCore/Transport`` implementations, for plugin authors.
///
/// It needs no test framework: call it from any test and let it throw.
/// ```swift
/// @Test func conforms() async throws {
///     try await TransportConformance.run(name: "quic", maxFrameSize: 65_536) {
///         QUICTransport(settings: TransportSettings(maxFrameSize: 65_536))
///     }
/// }
/// ```
/// It starts three transports on local members (`127.0.0.1`, port 0) with a recording
/// ``CohortCore/TransportDelegate`` and checks that
/// - `start` returns the bound address (not port 0), and `handshake` returns the peer's member
///   record while the peer's delegate learns of the caller (`transport(didAccept:)`);
/// - for every ``CohortCore/DeliveryGuarantee`` a sequence of sends to two members reports one
///   outcome per destination, in destination order (`queued` for asynchronous sends, `delivered`
///   otherwise), and each receiver's delegate gets every payload byte for byte, in order, with
///   sender, type, codec, flags and guarantee intact; a `processed` send returns only after the
///   receiving delegate finished;
/// - a delegate answering ``CohortCore/DeliveryResult/handlerFailed(_:)`` yields
///   ``CohortCore/MemberOutcome/remoteFailure(_:)`` (with its text) under `processed`, and one
///   answering ``CohortCore/DeliveryResult/rejected(_:)`` yields
///   ``CohortCore/MemberOutcome/rejected(_:)``;
/// - a heartbeat reaches the peer's delegate (`transport(heardFrom:)`);
/// - a payload above ``CohortCore/TransportSettings/maxFrameSize`` is refused with
///   ``CohortCore/MemberOutcome/rejected(_:)`` for every destination and never delivered;
/// - a probe of a live member answers `alive`, of another incarnation at a live address
///   `refused`, and of a shut-down member anything but `alive`;
/// - `leave(notifying:)` makes the peers' delegates see `transport(memberLeft:)`;
/// - after a member shut down, a send reports a failure for that member only;
/// - `shutdown` returns.
///
/// Every step is bounded by `timeout`; a step that does not finish fails the suite instead of
/// hanging the test run.
public enum TransportConformance {
    /// The message type the suite sends for guarantee `g` is `dataTypeBase + g.rawValue`.
    static let dataTypeBase: UInt32 = 40_000
    /// Messages of this type make the recording delegate answer `handlerFailed`.
    static let failingType = MessageType(40_100)
    /// Messages of this type make the recording delegate answer `rejected`.
    static let rejectingType = MessageType(40_101)
    /// The type of the oversized message.
    static let oversizedType = MessageType(40_102)
    /// The type of the message that follows the oversized one.
    static let markerType = MessageType(40_103)
    /// The type used after a member shut down.
    static let afterShutdownType = MessageType(40_104)
    /// Messages sent per guarantee.
    static let messagesPerGuarantee = 12

    /// Runs every check.
    ///
    /// - Parameters:
    ///   - name: the transport's name, for failure messages.
    ///   - maxFrameSize: the ``CohortCore/TransportSettings/maxFrameSize`` the transports are made
    ///     with; nil skips the frame-cap check (only for test doubles that have no cap — a
    ///     transport shipped as a plugin must enforce it).
    ///   - timeout: the longest any one step may take (generous by default: it bounds a hang on a
    ///     busy machine, it does not measure speed).
    ///   - makeMember: makes the local member of the transport with an index (0, 1, 2); the
    ///     default listens on `127.0.0.1` port 0.
    ///   - makeTransport: makes a new, unstarted transport; called three times.
    /// - Throws: ``PluginConformanceFailure`` naming the first check that failed.
    public static func run(
        name: String,
        maxFrameSize: Int?,
        timeout: Duration = .seconds(30),
        makeMember: (Int) -> Member = TransportConformance.localMember,
        makeTransport: () throws -> any Transport
    ) async throws {
        // The largest regular payload: 64 KiB, or half the frame cap when that is smaller.
        let largest = min(65_536, (maxFrameSize ?? Int.max) / 2)
        let suite = Suite(name: name, timeout: timeout, largestPayload: largest)
        var nodes: [Node] = []
        do {
            for index in 0..<3 {
                let transport: any Transport
                do {
                    transport = try makeTransport()
                } catch {
                    throw suite.failure("make transport", "makeTransport threw \(error)")
                }
                nodes.append(Node(transport: transport, member: makeMember(index)))
            }
            try await suite.checkStart(nodes)
            try await suite.checkHandshake(nodes)
            for guarantee in DeliveryGuarantee.allCases {
                try await suite.checkSends(nodes, guarantee: guarantee)
            }
            try await suite.checkDeliveryResults(nodes)
            try await suite.checkHeartbeat(nodes)
            if let maxFrameSize { try await suite.checkFrameCap(nodes, maxFrameSize: maxFrameSize) }
            try await suite.checkProbeAlive(nodes)
            try await suite.checkLeave(nodes)
            try await suite.checkAfterShutdown(nodes)
            for node in nodes where !node.isShutDown {
                try await suite.step("shutdown") { await node.transport.shutdown() }
                node.isShutDown = true
            }
        } catch {
            // Best effort: do not leave listening sockets behind after a failure.
            for node in nodes where node.started && !node.isShutDown {
                _ = try? await suite.step("shutdown after a failure") { await node.transport.shutdown() }
            }
            throw error
        }
    }

    /// A member listening on `127.0.0.1`, port 0 (the transport picks a free port).
    public static func localMember(_ index: Int) -> Member {
        Member(
            name: "conformance-\(index)",
            endpoint: Endpoint(host: "127.0.0.1", port: 0),
            startTime: Int64(Date().timeIntervalSince1970 * 1000)
        )
    }

    // MARK: - State

    /// One transport under test and what its delegate saw.
    final class Node: @unchecked Sendable {
        let transport: any Transport
        let recorder = RecordingTransportDelegate()
        /// The member record, with the bound endpoint once started.
        var member: Member
        var started = false
        var isShutDown = false

        init(transport: any Transport, member: Member) {
            self.transport = transport
            self.member = member
        }
    }

    struct Suite {
        let name: String
        let timeout: Duration
        let largestPayload: Int

        func failure(_ check: String, _ detail: String) -> PluginConformanceFailure {
            PluginConformanceFailure(kind: .transport, plugin: name, check: check, detail: detail)
        }

        func expect(_ condition: Bool, _ check: String, _ detail: @autoclosure () -> String) throws {
            if !condition { throw failure(check, detail()) }
        }

        /// Runs `body`, failing the check if it does not finish within the timeout.
        func step<T: Sendable>(_ check: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
            switch await raceDeadline(timeout, body) {
            case .finished(let value): return value
            case .threw(let error): throw failure(check, "threw \(error)")
            case .timedOut: throw failure(check, "did not finish within \(timeout)")
            }
        }

        /// Polls until `condition` holds, failing the check at the deadline.
        func waitUntil(_ check: String, _ detail: @autoclosure () -> String, _ condition: () -> Bool) async throws {
            let held = await eventually(timeout: timeout, poll: .milliseconds(5)) { condition() }
            if !held { throw failure(check, "\(detail()) (waited \(timeout))") }
        }

        // MARK: Checks

        func checkStart(_ nodes: [Node]) async throws {
            for node in nodes {
                let member = node.member
                let recorder = node.recorder
                let transport = node.transport
                let bound = try await step("start") { try await transport.start(local: member, delegate: recorder) }
                node.started = true
                try expect(bound.port != 0, "start", "start(local:) returned port 0; it must return the port actually bound")
                try expect(bound.host == member.endpoint.host, "start", "asked to listen on \(member.endpoint.host), start returned \(bound)")
                node.member.endpoint = bound
            }
            let endpoints = nodes.map(\.member.endpoint)
            try expect(Set(endpoints).count == nodes.count, "start", "three transports returned the same address: \(endpoints)")
        }

        func checkHandshake(_ nodes: [Node]) async throws {
            for (i, node) in nodes.enumerated() {
                for (j, peer) in nodes.enumerated() where i != j {
                    let check = "handshake \(i) -> \(j)"
                    let transport = node.transport
                    let endpoint = peer.member.endpoint
                    let answered = try await step(check) { try await transport.handshake(with: endpoint, timeout: .seconds(5)) }
                    try expect(answered.id == peer.member.id, check, "handshake with \(endpoint) returned member \(answered.id), expected \(peer.member.id)")
                    try expect(answered.endpoint == endpoint, check, "the peer's record says it listens on \(answered.endpoint), it was reached at \(endpoint)")
                    try expect(answered.name == peer.member.name, check, "the peer's record has name '\(answered.name)', expected '\(peer.member.name)'")
                    let caller = node.member.id
                    try await waitUntil(check, "the peer's delegate never saw transport(didAccept:) for the caller") {
                        peer.recorder.snapshot.accepted.contains { $0.id == caller }
                    }
                }
            }
        }

        func checkSends(_ nodes: [Node], guarantee: DeliveryGuarantee) async throws {
            let check = "send \(guarantee)"
            let sender = nodes[0]
            let receivers = [nodes[1], nodes[2]]
            let destinations = receivers.map(\.member)
            let type = MessageType(dataTypeBase + UInt32(guarantee.rawValue))
            var expected: [[UInt8]] = []
            for index in 0..<messagesPerGuarantee {
                let bytes = TransportConformance.payload(index: index, guarantee: guarantee, largest: largestPayload)
                expected.append(bytes)
                let flags = (UInt32(1) << 16) | UInt32(index)
                let message = OutboundMessage(
                    type: type,
                    codec: .binary,
                    payload: ByteBuffer(bytes: bytes),
                    options: SendOptions(guarantee: guarantee, timeout: timeout, flags: flags)
                )
                let transport = sender.transport
                let report = try await step(check) { await transport.send(message, to: destinations) }
                try expect(report.count == destinations.count, check, "message \(index): \(report.count) outcomes for \(destinations.count) destinations")
                let wanted: MemberOutcome = guarantee == .asynchronous ? .queued : .delivered
                for (slot, destination) in destinations.enumerated() where slot < report.count {
                    let (member, outcome) = report.outcomes[slot]
                    try expect(member == destination.id, check, "message \(index): outcome \(slot) is for \(member), expected \(destination.id) (destination order)")
                    try expect(outcome == wanted, check, "message \(index) to \(destination.name): outcome \(outcome), expected \(wanted)")
                }
                if guarantee == .processed {
                    // The receiving delegate has finished before a processed send returns.
                    for receiver in receivers {
                        let count = receiver.recorder.snapshot.received.filter { $0.type == type }.count
                        try expect(count == index + 1, check, "message \(index) was reported processed, but \(receiver.member.name)'s delegate has handled \(count) of \(index + 1)")
                    }
                }
            }
            for receiver in receivers {
                try await waitUntil(check, "\(receiver.member.name)'s delegate received \(receiver.recorder.snapshot.received.filter { $0.type == type }.count) of \(expected.count) messages") {
                    receiver.recorder.snapshot.received.filter { $0.type == type }.count >= expected.count
                }
                let got = receiver.recorder.snapshot.received.filter { $0.type == type }
                try expect(got.count == expected.count, check, "\(receiver.member.name)'s delegate received \(got.count) messages, \(expected.count) were sent")
                for (index, message) in got.enumerated() {
                    if message.payload != expected[index] {
                        let position = expected.firstIndex(of: message.payload).map { "message \($0)" } ?? "bytes that were never sent"
                        throw failure(check, "\(receiver.member.name) got \(position) (\(message.payload.count) bytes) where message \(index) (\(expected[index].count) bytes) was due: payloads must arrive intact and in order")
                    }
                    try expect(message.sender.id == sender.member.id, check, "message \(index) arrived with sender \(message.sender), expected \(sender.member)")
                    try expect(message.codec == .binary, check, "message \(index) arrived with \(message.codec), sent with \(CodecID.binary)")
                    try expect(message.guarantee == guarantee, check, "message \(index) arrived with guarantee \(message.guarantee), sent with \(guarantee)")
                    let flags = (UInt32(1) << 16) | UInt32(index)
                    try expect(message.flags == flags, check, "message \(index) arrived with flags \(message.flags), sent with \(flags)")
                }
            }
        }

        func checkDeliveryResults(_ nodes: [Node]) async throws {
            let sender = nodes[0].transport
            let target = nodes[1].member
            let failing = OutboundMessage(type: failingType, codec: .binary, payload: ByteBuffer(string: "fail"), options: SendOptions(guarantee: .processed, timeout: timeout))
            let report = try await step("handler failure") { await sender.send(failing, to: [target]) }
            switch report.outcome(for: target.id) {
            case .remoteFailure(let text):
                try expect(text.contains(RecordingTransportDelegate.failureText), "handler failure", "remoteFailure carries '\(text)', not the handler's text '\(RecordingTransportDelegate.failureText)'")
            case let other:
                throw failure("handler failure", "a delegate answering handlerFailed under .processed gave outcome \(other.map { "\($0)" } ?? "none"), expected remoteFailure")
            }
            let rejecting = OutboundMessage(type: rejectingType, codec: .binary, payload: ByteBuffer(string: "reject"), options: SendOptions(guarantee: .processed, timeout: timeout))
            let rejected = try await step("rejection") { await sender.send(rejecting, to: [target]) }
            guard case .rejected = rejected.outcome(for: target.id) else {
                throw failure("rejection", "a delegate answering rejected under .processed gave outcome \(rejected.outcome(for: target.id).map { "\($0)" } ?? "none"), expected rejected")
            }
        }

        func checkHeartbeat(_ nodes: [Node]) async throws {
            let source = nodes[1]
            let target = nodes[2]
            source.transport.heartbeat(to: [target.member])
            let id = source.member.id
            try await waitUntil("heartbeat", "the peer's delegate never saw transport(heardFrom:) after a heartbeat") {
                target.recorder.snapshot.heard.contains { $0.id == id }
            }
        }

        func checkFrameCap(_ nodes: [Node], maxFrameSize: Int) async throws {
            let check = "frame cap"
            let sender = nodes[0].transport
            let destinations = [nodes[1].member, nodes[2].member]
            let huge = OutboundMessage(
                type: oversizedType,
                codec: .binary,
                payload: ByteBuffer(repeating: 0xAB, count: maxFrameSize + 1),
                options: SendOptions(guarantee: .processed, timeout: timeout)
            )
            let report = try await step(check) { await sender.send(huge, to: destinations) }
            try expect(report.count == destinations.count, check, "\(report.count) outcomes for \(destinations.count) destinations")
            for destination in destinations {
                guard case .rejected = report.outcome(for: destination.id) else {
                    throw failure(check, "a payload of \(maxFrameSize + 1) bytes (cap \(maxFrameSize)) to \(destination.name) gave \(report.outcome(for: destination.id).map { "\($0)" } ?? "no outcome"), expected rejected")
                }
            }
            // A marker sent afterwards arrives after anything sent before it on the same
            // connection, so once it is processed the oversized payload can no longer come.
            let marker = OutboundMessage(type: markerType, codec: .binary, payload: ByteBuffer(string: "marker"), options: SendOptions(guarantee: .processed, timeout: timeout))
            let markerReport = try await step(check) { await sender.send(marker, to: destinations) }
            try expect(markerReport.allSucceeded, check, "the small message after the oversized one failed: \(markerReport)")
            for receiver in [nodes[1], nodes[2]] {
                let leaked = receiver.recorder.snapshot.received.contains { $0.type == oversizedType }
                try expect(!leaked, check, "\(receiver.member.name)'s delegate received the oversized payload; it must be refused without sending")
            }
        }

        func checkProbeAlive(_ nodes: [Node]) async throws {
            let prober = nodes[0].transport
            let live = nodes[1].member
            let alive = try await step("probe of a live member") { await prober.probe(live, timeout: .seconds(5)) }
            try expect(alive == .alive, "probe of a live member", "probing \(live) answered \(alive), expected alive")
            var impostorRecord = live
            impostorRecord.id = .random()
            let impostor = impostorRecord
            let other = try await step("probe of another incarnation") { await prober.probe(impostor, timeout: .seconds(5)) }
            try expect(other == .refused, "probe of another incarnation", "probing a member id that does not live at \(live.endpoint) answered \(other), expected refused")
        }

        func checkLeave(_ nodes: [Node]) async throws {
            let leaver = nodes[2]
            let peers = [nodes[0], nodes[1]]
            let transport = leaver.transport
            let members = peers.map(\.member)
            try await step("leave") { await transport.leave(notifying: members) }
            let id = leaver.member.id
            for peer in peers {
                try await waitUntil("leave", "\(peer.member.name)'s delegate never saw transport(memberLeft:) for the member that left") {
                    peer.recorder.snapshot.left.contains { $0.id == id }
                }
            }
            try await step("shutdown") { await transport.shutdown() }
            leaver.isShutDown = true
        }

        func checkAfterShutdown(_ nodes: [Node]) async throws {
            let prober = nodes[0].transport
            let gone = nodes[2].member
            let result = try await step("probe of a shut-down member") { await prober.probe(gone, timeout: .seconds(2)) }
            try expect(result != .alive, "probe of a shut-down member", "probing \(gone) after its shutdown answered alive")

            let check = "send after a member shut down"
            let destinations = [nodes[1].member, gone]
            let message = OutboundMessage(type: afterShutdownType, codec: .binary, payload: ByteBuffer(string: "still there?"), options: SendOptions(guarantee: .processed, timeout: .seconds(2)))
            let report = try await step(check) { await prober.send(message, to: destinations) }
            try expect(report.outcome(for: nodes[1].member.id) == .delivered, check, "the live member's outcome is \(report.outcome(for: nodes[1].member.id).map { "\($0)" } ?? "missing"), expected delivered: \(report)")
            let goneOutcome = report.outcome(for: gone.id)
            try expect(goneOutcome != nil && goneOutcome?.isSuccess == false, check, "the shut-down member's outcome is \(goneOutcome.map { "\($0)" } ?? "missing"), expected a failure")
        }
    }

    /// The payload of message `index` under a guarantee: a header naming it, then a byte pattern
    /// covering all 256 values; sizes vary from a few bytes to `largest`.
    static func payload(index: Int, guarantee: DeliveryGuarantee, largest: Int) -> [UInt8] {
        let sizes = [0, 1, 255, 256, 1000, 4096, largest]
        var bytes = Array("\(guarantee)#\(index)|".utf8)
        let extra = max(0, min(sizes[index % sizes.count], largest - bytes.count))
        bytes.reserveCapacity(bytes.count + extra)
        for i in 0..<extra { bytes.append(UInt8(truncatingIfNeeded: i &* 31 &+ index)) }
        return bytes
    }
}

/// A ``CohortCore/TransportDelegate`` that records every call, for transport tests.
///
/// It answers `handlerFailed` for message type 40100, `rejected` for 40101 and `processed`
/// otherwise.
public final class RecordingTransportDelegate: TransportDelegate, Sendable {
    /// A received message, with its payload copied out.
    public struct Received: Sendable {
        /// The member that sent it.
        public var sender: Member
        /// Its type id.
        public var type: MessageType
        /// The codec it was written with.
        public var codec: CodecID
        /// The guarantee the sender asked for.
        public var guarantee: DeliveryGuarantee
        /// The sender's option flags.
        public var flags: UInt32
        /// The payload bytes (the readable region of the inbound buffer).
        public var payload: [UInt8]
    }

    /// Everything recorded so far, each list in arrival order.
    public struct Snapshot: Sendable {
        /// Members seen in `transport(didAccept:)`.
        public var accepted: [Member] = []
        /// Members seen in `transport(heardFrom:)`.
        public var heard: [Member] = []
        /// Messages seen in `transport(received:)`.
        public var received: [Received] = []
        /// Calls of `transport(lostConnectionTo:reason:)`.
        public var lost: [(member: Member, reason: String)] = []
        /// Members seen in `transport(memberLeft:)`.
        public var left: [Member] = []
        /// Calls of `transport(asyncMessagesFailed:to:reason:)`.
        public var asyncFailures: [(count: Int, member: Member, reason: String)] = []
    }

    /// The text of the `handlerFailed` answer.
    public static let failureText = "conformance handler failure"

    private let state = NIOLockedValueBox(Snapshot())

    /// Creates an empty recorder.
    public init() {}

    /// What was recorded so far.
    public var snapshot: Snapshot { state.withLockedValue { $0 } }

    public func transport(didAccept member: Member) { state.withLockedValue { $0.accepted.append(member) } }
    public func transport(heardFrom member: Member) { state.withLockedValue { $0.heard.append(member) } }

    public func transport(received message: InboundMessage) async -> DeliveryResult {
        let payload = message.payload.getBytes(at: message.payload.readerIndex, length: message.payload.readableBytes) ?? []
        state.withLockedValue {
            $0.received.append(Received(sender: message.sender, type: message.type, codec: message.codec, guarantee: message.guarantee, flags: message.flags, payload: payload))
        }
        switch message.type {
        case TransportConformance.failingType: return .handlerFailed(Self.failureText)
        case TransportConformance.rejectingType: return .rejected("conformance rejection")
        default: return .processed
        }
    }

    public func transport(lostConnectionTo member: Member, reason: String) { state.withLockedValue { $0.lost.append((member, reason)) } }
    public func transport(memberLeft member: Member) { state.withLockedValue { $0.left.append(member) } }
    public func transport(asyncMessagesFailed count: Int, to member: Member, reason: String) {
        state.withLockedValue { $0.asyncFailures.append((count, member, reason)) }
    }
}

/// How a bounded step ended.
enum DeadlineOutcome<T: Sendable>: Sendable {
    case finished(T)
    case threw(any Error)
    case timedOut
}

/// Runs `body` in its own task and returns when it finishes or when `timeout` passes, whichever
/// comes first. A body that ignores cancellation cannot hold the caller past the deadline (it is
/// cancelled and left to finish on its own).
func raceDeadline<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async -> DeadlineOutcome<T> {
    let gate = DeadlineGate<T>()
    return await withCheckedContinuation { (continuation: CheckedContinuation<DeadlineOutcome<T>, Never>) in
        gate.install(continuation)
        let timer = Task {
            try? await Task.sleep(for: timeout)
            if gate.finish(.timedOut) { gate.cancelWork() }
        }
        let work = Task {
            let outcome: DeadlineOutcome<T>
            do {
                outcome = .finished(try await body())
            } catch {
                outcome = .threw(error)
            }
            if gate.finish(outcome) { timer.cancel() }
        }
        gate.setWork(work)
    }
}

/// Resumes one continuation with the first outcome offered.
final class DeadlineGate<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<DeadlineOutcome<T>, Never>?
        var done = false
        var work: Task<Void, Never>?
        var timedOut = false
    }
    private let state = NIOLockedValueBox(State())

    func install(_ continuation: CheckedContinuation<DeadlineOutcome<T>, Never>) {
        state.withLockedValue { $0.continuation = continuation }
    }

    func setWork(_ work: Task<Void, Never>) {
        let cancel: Bool = state.withLockedValue {
            $0.work = work
            return $0.timedOut
        }
        if cancel { work.cancel() }
    }

    /// Cancels the body after a timeout (now, or as soon as its task is known).
    func cancelWork() {
        let work: Task<Void, Never>? = state.withLockedValue {
            $0.timedOut = true
            return $0.work
        }
        work?.cancel()
    }

    /// Offers an outcome; returns whether it was the first.
    @discardableResult
    func finish(_ outcome: DeadlineOutcome<T>) -> Bool {
        let continuation: CheckedContinuation<DeadlineOutcome<T>, Never>? = state.withLockedValue {
            state in
            guard !state.done else { return nil }
            state.done = true
            let pending = state.continuation
            state.continuation = nil
            return pending
        }
        guard let continuation else { return false }
        continuation.resume(returning: outcome)
        return true
    }
}
