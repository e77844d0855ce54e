import Cohort
import CohortCodecBinary
import Foundation
import NIOCore
import Testing
@testable import CohortSessions

/// The request-scoped session value: changes collect into one delta.
@Suite struct SessionTests {
    struct Refuses: Codable {
        init() {}
        func encode(to encoder: any Encoder) throws {
            throw EncodingError.invalidValue(0, .init(codingPath: [], debugDescription: "refuses to encode"))
        }
    }

    func session() -> Session {
        let record = SessionRecord(
            id: "s1", creationTime: 1_000, lastAccessedTime: 2_000,
            maxInactive: Stamped(value: 60_000, stamp: .zero), absoluteExpiry: Stamped(value: nil, stamp: .zero),
            principal: Stamped(value: nil, stamp: .zero),
            attributes: ["kept": Stamped(value: ByteBuffer(string: "x"), stamp: .zero)], version: 3, latestStamp: .zero
        )
        return Session(record: record, codec: BinaryCodec())
    }

    @Test func repeatedSetsCollapseIntoOneChange() throws {
        var session = session()
        for count in 1...10 { try session.setAttribute("count", count) }
        session.removeAttribute("kept")
        #expect(session.changes.attributes.count == 2)
        #expect(try session.attribute("count", as: Int.self) == 10)
        #expect(session.changes.attributes["kept"] == .some(nil))
        #expect(session.attributeNames == ["count"])
        #expect(session.hasChanges)
    }

    @Test func subscriptReadsAndWrites() {
        var session = session()
        session["name"] = "ada"
        let name: String? = session["name"]
        #expect(name == "ada")
        session["name"] = String?.none
        let gone: String? = session["name"]
        #expect(gone == nil)
    }

    @Test func encodingFailureIsReportedNotStored() {
        var session = session()
        #expect(throws: CohortError.self) { try session.setAttribute("bad", Refuses()) }
        #expect(session.changes.attributes["bad"] == nil)
        session["bad"] = Refuses()
        #expect(session.encodingFailure?.code == .codecFailure)
    }

    @Test func fieldsRecordChanges() {
        var session = session()
        #expect(!session.hasChanges)
        session.principal = "ada"
        session.maxInactiveInterval = .seconds(5)
        session.absoluteExpiry = Date(wallMillis: 9_000)
        session.changeID(to: "s2")
        #expect(session.id == "s2")
        #expect(session.changes.principal == Change(value: "ada"))
        #expect(session.changes.maxInactive == 5_000)
        #expect(session.changes.absoluteExpiry == Change(value: 9_000))
        #expect(session.changes.newID == "s2")
        session.invalidate()
        #expect(session.isInvalidated)
    }
}
