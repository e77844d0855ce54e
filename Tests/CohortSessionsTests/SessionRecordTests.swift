import Cohort
import CohortCodecBinary
import CohortCodecJSON
import NIOCore
import Testing
@testable import CohortSessions

/// Pure tests of session records and deltas: stamps, duplicates, reordering, merging.
@Suite struct SessionRecordTests {
    static let a: UInt64 = 0xA
    static let b: UInt64 = 0xB

    func bytes(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    func createDelta(_ id: String = "s1", at time: WallMillis = 1_000, counter: UInt64 = 1, origin: UInt64 = a) -> SessionDelta {
        var delta = SessionDelta(sessionID: id, stamp: Stamp(counter: counter, origin: origin))
        delta.creation = .init(creationTime: time)
        delta.lastAccessedTime = time
        delta.maxInactive = 60_000
        return delta
    }

    func setDelta(_ name: String, _ value: String?, counter: UInt64, origin: UInt64 = a, access: WallMillis? = nil) -> SessionDelta {
        var delta = SessionDelta(sessionID: "s1", stamp: Stamp(counter: counter, origin: origin))
        let encoded: ByteBuffer? = value.map { bytes($0) }
        delta.attributes[name] = .some(encoded)
        delta.lastAccessedTime = access
        return delta
    }

    @Test func createsFromACreationDeltaOnly() throws {
        #expect(SessionRecord.creating(from: setDelta("x", "1", counter: 1)) == nil)
        let record = try #require(SessionRecord.creating(from: createDelta()))
        #expect(record.id == "s1")
        #expect(record.version == 1)
        #expect(record.creationTime == 1_000)
        #expect(record.deadline == 61_000)
    }

    @Test func duplicateDeltaChangesNothing() throws {
        var record = try #require(SessionRecord.creating(from: createDelta()))
        let delta = setDelta("cart", "apples", counter: 2, access: 2_000)
        guard case .changed(let effective) = record.apply(delta) else {
            Issue.record("first application must change the record")
            return
        }
        #expect(effective.attributes["cart"] == .some(bytes("apples")))
        let before = record
        guard case .unchanged = record.apply(delta) else {
            Issue.record("a duplicate must not change the record")
            return
        }
        #expect(record == before)
        #expect(record.version == 2)
    }

    @Test func lateDeltaNeverRollsBack() throws {
        var record = try #require(SessionRecord.creating(from: createDelta()))
        _ = record.apply(setDelta("cart", "pears", counter: 3, access: 3_000))
        let late = setDelta("cart", "apples", counter: 2, access: 2_000)
        if case .changed = record.apply(late) { Issue.record("a late delta must not change a newer value") }
        #expect(record.liveAttributes["cart"] == bytes("pears"))
        #expect(record.lastAccessedTime == 3_000)
        #expect(record.version == 3)
    }

    @Test func anyOrderGivesTheSameRecord() throws {
        let deltas = [
            setDelta("a", "1", counter: 2, access: 2_000),
            setDelta("b", "2", counter: 3, access: 3_000),
            setDelta("a", nil, counter: 4, access: 4_000),
            setDelta("b", "3", counter: 4, origin: Self.b, access: 3_500),
        ]
        var results: [SessionRecord] = []
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2, 2, 1]] {
            var record = try #require(SessionRecord.creating(from: createDelta()))
            for index in order { _ = record.apply(deltas[index]) }
            results.append(record)
        }
        #expect(results.allSatisfy { $0 == results[0] })
        #expect(results[0].liveAttributes == ["b": bytes("3")])
        #expect(results[0].lastAccessedTime == 4_000)
        #expect(results[0].version == 4)
    }

    @Test func concurrentWritersConvergeByOrigin() throws {
        var onA = try #require(SessionRecord.creating(from: createDelta()))
        var onB = onA
        let fromA = setDelta("x", "A", counter: 2, origin: Self.a)
        let fromB = setDelta("x", "B", counter: 2, origin: Self.b)
        _ = onA.apply(fromA)
        _ = onA.apply(fromB)
        _ = onB.apply(fromB)
        _ = onB.apply(fromA)
        #expect(onA == onB)
        #expect(onA.liveAttributes["x"] == bytes("B"))
    }

    @Test func mergeIsCommutativeAndIdempotent() throws {
        var left = try #require(SessionRecord.creating(from: createDelta()))
        var right = left
        _ = left.apply(setDelta("a", "1", counter: 2, access: 2_000))
        _ = right.apply(setDelta("b", "2", counter: 3, origin: Self.b, access: 1_500))
        var leftMerged = left
        let leftChanged = leftMerged.merge(right)
        var rightMerged = right
        let rightChanged = rightMerged.merge(left)
        #expect(leftChanged && rightChanged)
        #expect(leftMerged == rightMerged)
        let again = leftMerged.merge(right)
        #expect(!again)
        #expect(leftMerged.liveAttributes.count == 2)
        #expect(leftMerged.lastAccessedTime == 2_000)
    }

    @Test func invalidationDeletes() throws {
        var record = try #require(SessionRecord.creating(from: createDelta()))
        var delta = SessionDelta(sessionID: "s1", stamp: Stamp(counter: 2, origin: Self.a))
        delta.invalidated = true
        guard case .deleted = record.apply(delta) else {
            Issue.record("invalidation must delete")
            return
        }
    }

    @Test func deadlineIsIdleOrAbsoluteWhicheverFirst() throws {
        var record = try #require(SessionRecord.creating(from: createDelta(at: 1_000)))
        #expect(record.deadline == 61_000)
        var delta = SessionDelta(sessionID: "s1", stamp: Stamp(counter: 2, origin: Self.a))
        delta.absoluteExpiry = Change(value: 30_000)
        _ = record.apply(delta)
        #expect(record.deadline == 30_000)
        _ = record.apply(setDelta("x", "1", counter: 3, access: 50_000))
        #expect(record.deadline == 30_000)
        delta = SessionDelta(sessionID: "s1", stamp: Stamp(counter: 4, origin: Self.a))
        delta.absoluteExpiry = Change(value: nil)
        delta.maxInactive = 0
        _ = record.apply(delta)
        #expect(record.deadline == nil)
    }

    @Test func deltaRoundTripsThroughBothCodecs() throws {
        var delta = createDelta()
        delta.attributes = ["set": bytes("v"), "gone": nil]
        delta.principal = Change(value: nil)
        delta.absoluteExpiry = Change(value: 99)
        delta.newID = "s2"
        for codec in [BinaryCodec(), JSONCodec()] as [any MessageCodec] {
            var buffer = try codec.encode(delta)
            let decoded = try codec.decode(SessionDelta.self, from: &buffer)
            #expect(decoded == delta, "\(codec.name)")
        }
    }

    @Test func accessOnlyDeltaIsSmall() throws {
        var delta = SessionDelta(sessionID: SessionID.random(), stamp: Stamp(counter: 12, origin: .max))
        delta.lastAccessedTime = 1_767_000_000_000
        let size = try BinaryCodec().encode(delta).readableBytes
        #expect(size < 80, "an access-only delta encodes to \(size) bytes")
    }
}
