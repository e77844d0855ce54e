import CohortCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// Hostile input at the core: member records, the view cap, tombstone pruning, and the rate
/// limit of malformed-input logs (issue 15).
@Suite("Hostile input (core)")
struct HostileInputCoreTests {
    let t0 = ContinuousClock.now
    let local = Member(name: "local", endpoint: Endpoint(host: "127.0.0.1", port: 1), startTime: 1)

    func member(_ n: Int) -> Member {
        Member(id: MemberID(high: 1, low: UInt64(n)), name: "m\(n)", endpoint: Endpoint(host: "127.0.0.1", port: 1000 + n), startTime: Int64(n))
    }

    // MARK: - member records

    func record(metadata count: Int, valueSize: Int = 1) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(1))
        buffer.writeInteger(UInt64(1))
        buffer.writeInteger(UInt64(2))
        buffer.writeInteger(Int64(0))
        buffer.writeInteger(UInt16(4001))
        for text in ["127.0.0.1", "n", "default"] { WireFormat.writeString(text, into: &buffer) }
        buffer.writeInteger(UInt16(count))
        for i in 0..<count {
            WireFormat.writeString("k\(i)", into: &buffer)
            WireFormat.writeString(String(repeating: "v", count: valueSize), into: &buffer)
        }
        return buffer
    }

    @Test func memberRecordWithTooManyMetadataEntriesIsRefused() throws {
        var fine = record(metadata: WireFormat.maxMetadataEntries)
        #expect(try WireFormat.readMember(from: &fine).metadata.count == WireFormat.maxMetadataEntries)
        var tooMany = record(metadata: WireFormat.maxMetadataEntries + 1)
        let before = tooMany.readerIndex
        let error = #expect(throws: CohortError.self) { try WireFormat.readMember(from: &tooMany) }
        #expect(error?.code == .malformedFrame)
        #expect(tooMany.readerIndex == before)
    }

    @Test func memberRecordLargerThanTheCapIsRefused() {
        // Three metadata values of 30 KiB: about 90 KiB, above the 64 KiB a record may take.
        var big = record(metadata: 3, valueSize: 30_000)
        let error = #expect(throws: CohortError.self) { try WireFormat.readMember(from: &big) }
        #expect(error?.code == .malformedFrame)
        #expect(error?.message.contains("\(WireFormat.maxMemberRecordSize)") == true)
    }

    @Test func memberRecordWithARepeatedMetadataKeyIsRefused() {
        var buffer = record(metadata: 0)
        buffer.moveWriterIndex(to: buffer.writerIndex - 2)
        buffer.writeInteger(UInt16(2))
        for _ in 0..<2 {
            WireFormat.writeString("zone", into: &buffer)
            WireFormat.writeString("a", into: &buffer)
        }
        let error = #expect(throws: CohortError.self) { try WireFormat.readMember(from: &buffer) }
        #expect(error?.message.contains("twice") == true)
    }

    // MARK: - the view

    @Test func viewIsCappedAndExcessMembersAreCounted() {
        var state = MembershipState(local: local, settings: .init(maxMembers: 3))
        for n in 0..<10 { _ = state.onAccepted(member(n), now: t0) }
        #expect(state.members.count == 3)
        #expect(state.refusedMembers == 7)
        // Heartbeats of a refused member do not get it in either.
        _ = state.onHeard(member(9), now: t0)
        #expect(state.members.count == 3)
        #expect(state.refusedMembers == 8)
        // A new incarnation at a member's address replaces it even when the view is full.
        let restarted = Member(name: "m0", endpoint: member(0).endpoint, startTime: 99)
        _ = state.onAccepted(restarted, now: t0)
        #expect(state.members.contains(restarted))
        #expect(state.members.count == 3)
        // Room again after a member leaves.
        _ = state.onLeft(restarted.id, now: t0)
        _ = state.onAccepted(member(5), now: t0)
        #expect(state.members.contains(member(5)))
    }

    @Test func refusedHandshakeIsRetriedLaterNotOnEveryTick() {
        var state = MembershipState(local: local, settings: .init(retryInterval: .milliseconds(500), maxMembers: 1))
        _ = state.onAccepted(member(0), now: t0)
        _ = state.onCandidates([member(1).endpoint], now: t0)
        _ = state.onHandshake(member(1), at: member(1).endpoint, now: t0)
        #expect(!state.onTick(now: t0 + .milliseconds(100)).contains(.handshake(member(1).endpoint)))
        #expect(state.onTick(now: t0 + .milliseconds(600)).contains(.handshake(member(1).endpoint)))
    }

    @Test func candidatesAreCapped() {
        var state = MembershipState(local: local, settings: .init(maxCandidates: 4))
        _ = state.onCandidates((0..<10).map { member($0).endpoint }, now: t0)
        #expect(state.candidateCount == 4)
        #expect(state.refusedCandidates == 6)
        _ = state.onAnnounced(member(20), now: t0)
        #expect(state.candidateCount == 4)
        #expect(state.refusedCandidates == 7)
    }

    /// Tombstones were kept for ever (and copied on every change); now they are forgotten after
    /// the retention and capped, so the memory of departures levels off.
    @Test func tombstonesArePrunedAfterTheRetentionAndCapped() {
        var state = MembershipState(local: local, settings: .init(tombstoneRetention: .seconds(60), maxTombstones: 5))
        var departed: [Member] = []
        for n in 0..<8 {
            let m = member(n)
            _ = state.onAccepted(m, now: t0)
            _ = state.onLeft(m.id, now: t0 + .seconds(Int64(n)))
            departed.append(m)
        }
        // Only a tick forgets (the shell compares counts around each input).
        #expect(state.tombstoneCount == 8)
        _ = state.onTick(now: t0 + .seconds(10))
        #expect(state.tombstoneCount == 5)
        #expect(!state.isTombstoned(departed[0].id) && state.isTombstoned(departed[7].id))
        // A departed id stays refused within the retention…
        _ = state.onAccepted(departed[7], now: t0 + .seconds(20))
        #expect(!state.members.contains(departed[7]))
        // …and is forgotten after it.
        _ = state.onTick(now: t0 + .seconds(70))
        #expect(state.tombstoneCount == 0)
        #expect(state.retiredIDs.isEmpty)
    }

    @Test func settingsDecodeWithoutTheNewFields() throws {
        struct Old: Encodable {
            var heartbeatInterval = Duration.milliseconds(100)
            var missingAfter = Duration.seconds(1)
            var retryInterval = Duration.milliseconds(500)
            var handshakeTimeout = Duration.seconds(1)
        }
        let settings = try JSONDecoder().decode(MembershipState.Settings.self, from: JSONEncoder().encode(Old()))
        #expect(settings.heartbeatInterval == .milliseconds(100))
        #expect(settings.maxMembers == MembershipState.Settings().maxMembers)
    }

    // MARK: - log rate limit

    @Test func rateLimitLogsABurstThenCountsWhatItLeftOut() {
        var limit = LogRateLimit(burst: 2, interval: .seconds(10))
        #expect(limit.admit(now: t0) == .log(suppressedBefore: 0))
        #expect(limit.admit(now: t0) == .log(suppressedBefore: 0))
        for _ in 0..<5 { #expect(limit.admit(now: t0 + .seconds(1)) == .suppress) }
        #expect(limit.admit(now: t0 + .seconds(11)) == .log(suppressedBefore: 5))
        #expect(limit.admit(now: t0 + .seconds(11)) == .log(suppressedBefore: 0))
    }

    @Test func malformedInputLogCountsEverythingAndLogsALittle() {
        let lines = NIOLockedValueBox<[String]>([])
        let logger = Logger(label: "test") { _ in LineCollector(lines: lines) }
        let clock = FixedClock(now: t0)
        let log = MalformedInputLog(logger: logger, limit: LogRateLimit(burst: 3, interval: .seconds(10)), clock: clock)
        for n in 0..<1000 { log.record("frame", "bad frame \(n)") }
        #expect(log.count("frame") == 1000)
        #expect(log.total == 1000)
        #expect(lines.withLockedValue { $0.count } == 3)
    }
}

/// A clock that stays put.
struct FixedClock: CohortClock {
    var now: ContinuousClock.Instant
    func sleep(for duration: Duration) async throws {}
}

/// Collects log lines.
struct LineCollector: LogHandler {
    let lines: NIOLockedValueBox<[String]>
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        lines.withLockedValue { $0.append("\(message)") }
    }
}
