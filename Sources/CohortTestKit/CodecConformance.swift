import CohortCore
import Foundation
import NIOCore

/// A check of ``CodecConformance`` that a codec failed.
public struct ConformanceFailure: Error, CustomStringConvertible {
    /// The codec's name.
    public let codec: String
    /// The check that failed, such as `round trip: Int.min` or `truncated input`.
    public let check: String
    /// What was wrong.
    public let detail: String

    /// Creates a failure.
    public init(codec: String, check: String, detail: String) {
        self.codec = codec
        self.check = check
        self.detail = detail
    }

    /// `codec 'NAME' fails 'CHECK': DETAIL`.
    public var description: String { "codec '\(codec)' fails '\(check)': \(detail)" }
}

/// A conformance suite for ``CohortCore/MessageCodec`` implementations, for plugin authors.
///
/// It needs no test framework: call it from any test and let it throw.
/// ```swift
/// @Test func conforms() throws { try CodecConformance.run(MyCodec()) }
/// ```
/// It checks that the codec
/// - round-trips every sample in ``sampleNames`` (integer extremes, floating-point edge cases,
///   empty and unicode strings, `Data`, `[UInt8]`, `Date`, `UUID`, `URL`, optionals, nested
///   optionals, arrays, sets, `[String: T]`, `[Int: T]`, enums with associated values, deep
///   nesting, a 1 KiB ``CohortCore/TextMessage``), and that decoding consumes what was encoded;
/// - appends after bytes already in the buffer and decodes from the reader index;
/// - decodes two values written back to back into one buffer (skip with
///   `consumesWholeBuffer: true` for a format that is not self-delimiting, such as JSON);
/// - ignores keys it does not know and rejects a missing required key;
/// - throws ``CohortCore/CohortError`` with code `codecFailure` — and does not crash — for empty,
///   truncated, garbage and wrongly typed input, and for a value whose `encode(to:)` throws,
///   leaving the buffer as it was in that case.
public enum CodecConformance {
    /// Runs every check.
    ///
    /// - Parameters:
    ///   - codec: the codec under test.
    ///   - consumesWholeBuffer: true when the codec's `decode` reads the whole readable region
    ///     (the payload is always one message), so the back-to-back check does not apply.
    /// - Throws: ``ConformanceFailure`` naming the first check that failed.
    public static func run(_ codec: any MessageCodec, consumesWholeBuffer: Bool = false) throws {
        for sample in samples { try sample.check(codec) }
        try checkAppends(codec)
        if !consumesWholeBuffer { try checkBackToBack(codec) }
        try checkUnknownKeys(codec)
        try checkMissingKey(codec)
        try checkWrongType(codec)
        try checkTruncated(codec)
        try checkGarbage(codec)
        try checkFailedEncode(codec)
    }

    /// The names of the round-trip samples, in order.
    public static var sampleNames: [String] { samples.map(\.name) }

    /// Round-trips one sample by name.
    ///
    /// - Throws: ``ConformanceFailure``, also for an unknown name.
    public static func roundTrip(_ codec: any MessageCodec, sample name: String) throws {
        guard let sample = samples.first(where: { $0.name == name }) else {
            throw ConformanceFailure(codec: codec.name, check: "round trip: \(name)", detail: "there is no sample of that name")
        }
        try sample.check(codec)
    }

    /// Deterministic text of exactly `utf8Count` UTF-8 bytes, mixing ASCII, punctuation that
    /// text formats escape, and multi-byte characters.
    public static func sampleText(utf8Count: Int) -> String {
        let pieces = ["The quick brown fox jumps over the lazy dog. ", "Grüße aus Köln! ", "\"quoted\" \\ / ", "日本語のテキスト ", "👋🏽 "]
        var text = ""
        var index = 0
        while text.utf8.count < utf8Count {
            let piece = pieces[index % pieces.count]
            index += 1
            if text.utf8.count + piece.utf8.count <= utf8Count {
                text += piece
            } else {
                text += String(repeating: "x", count: utf8Count - text.utf8.count)
            }
        }
        return text
    }

    // MARK: Samples

    struct Sample: Sendable {
        let name: String
        let check: @Sendable (any MessageCodec) throws -> Void

        init<Value: Codable & Equatable & Sendable>(_ name: String, _ value: Value) {
            self.name = name
            check = { codec in try CodecConformance.roundTrip(codec, "round trip: \(name)", value) }
        }
    }

    static var samples: [Sample] {
        [
            Sample("Int zero", 0), Sample("Int.min", Int.min), Sample("Int.max", Int.max),
            Sample("Int64.min", Int64.min), Sample("UInt64.max", UInt64.max), Sample("Bool", true),
            Sample("small integers", Integers()),
            Sample("Double edge cases", [Double.greatestFiniteMagnitude, .leastNonzeroMagnitude, -0.0, .pi, 1e-300, .infinity, -.infinity]),
            Sample("Float values", [Float(0.15625), -1024.5, 16_777_216]),
            Sample("empty string", ""), Sample("unicode string", "Grüße, 世界! 👋🏽 e\u{301} \u{0} \"q\" \\ / \n\t"),
            Sample("empty array", [Int]()), Sample("array of strings", ["a", "", "ç", "👋🏽"]),
            Sample("top-level nil", Int?.none), Sample("nested optional", Int??.some(.some(3))),
            Sample("empty dictionary", [String: Int]()),
            Sample("[String: T] with numeric-looking keys", ["042": 1, "42": 2, "-7": 3, "": 4, "a": 5]),
            Sample("[Int: T]", [Int.min: "min", 0: "zero", 7: "seven", -1: ""]),
            Sample("Set<String>", Set(["x", "y", "z"])),
            Sample("Data", Data((0...255).map { UInt8($0) })), Sample("empty Data", Data()),
            Sample("[UInt8]", [UInt8](0...255)), Sample("empty [UInt8]", [UInt8]()),
            Sample("Date", Date(timeIntervalSinceReferenceDate: 700_000_000.25)),
            Sample("UUID", Everything.fixedUUID),
            Sample("URL", URL(string: "https://example.com/a%20b/c?q=1&r=%C3%A9#frag")),
            Sample("enums with associated values", [Shape.circle(radius: 2.5), .rect(1, -2), .point, .labelled("l", .point), .labelled("", nil)]),
            Sample("struct with every shape", Everything()),
            Sample("deep nesting", Node.chain(depth: 20)),
            Sample("1 KiB TextMessage", TextMessage(sampleText(utf8Count: 1024))),
        ]
    }

    // MARK: Checks

    static func checkAppends(_ codec: any MessageCodec) throws {
        let check = "appends after existing bytes"
        var buffer = ByteBuffer()
        buffer.writeString("PREFIX")
        let value = Address.sample
        try step(codec, check, "encode") { try codec.encode(value, into: &buffer) }
        guard buffer.getString(at: 0, length: 6) == "PREFIX" else {
            throw ConformanceFailure(codec: codec.name, check: check, detail: "bytes before the value were changed")
        }
        buffer.moveReaderIndex(forwardBy: 6)
        let decoded = try step(codec, check, "decode") { try codec.decode(Address.self, from: &buffer) }
        try expect(decoded == value && buffer.readableBytes == 0, codec, check, "decoded \(decoded), \(buffer.readableBytes) bytes left")
    }

    static func checkBackToBack(_ codec: any MessageCodec) throws {
        let check = "two values back to back"
        var buffer = ByteBuffer()
        let first = Everything()
        let second = Address.sample
        try step(codec, check, "encode") {
            try codec.encode(first, into: &buffer)
            try codec.encode(second, into: &buffer)
        }
        let one = try step(codec, check, "decode first") { try codec.decode(Everything.self, from: &buffer) }
        let two = try step(codec, check, "decode second") { try codec.decode(Address.self, from: &buffer) }
        try expect(one == first, codec, check, "the first value came back as \(one)")
        try expect(two == second, codec, check, "the second value came back as \(two)")
        try expect(buffer.readableBytes == 0, codec, check, "\(buffer.readableBytes) bytes left after both")
    }

    static func checkUnknownKeys(_ codec: any MessageCodec) throws {
        let check = "unknown keys are ignored"
        let newer = ProfileV2(extra: ["k": [1, 2]], name: "Ada", shape: .labelled("x", .point), age: 36, zzz: Everything())
        let buffer = try step(codec, check, "encode") { try codec.encode(newer) }
        var input = buffer
        let older = try step(codec, check, "decode") { try codec.decode(ProfileV1.self, from: &input) }
        try expect(older == ProfileV1(name: "Ada", age: 36), codec, check, "decoded \(older)")
    }

    static func checkMissingKey(_ codec: any MessageCodec) throws {
        let buffer = try step(codec, "missing key", "encode") { try codec.encode(ProfileV1(name: "Ada", age: 36)) }
        try expectFailure(codec, "missing key", ProfileV2.self, buffer)
    }

    static func checkWrongType(_ codec: any MessageCodec) throws {
        let text = try step(codec, "wrong type", "encode") { try codec.encode("not a struct") }
        try expectFailure(codec, "wrong type: String as a struct", Address.self, text)
        let numbers = try step(codec, "wrong type", "encode") { try codec.encode([1, 2, 3]) }
        try expectFailure(codec, "wrong type: [Int] as String", String.self, numbers)
        let big = try step(codec, "wrong type", "encode") { try codec.encode(300) }
        try expectFailure(codec, "wrong type: 300 as UInt8", UInt8.self, big)
    }

    static func checkTruncated(_ codec: any MessageCodec) throws {
        let full = try step(codec, "truncated input", "encode") { try codec.encode(Everything()) }
        let size = full.readableBytes
        let stride = max(1, size / 400)
        for length in Swift.stride(from: 0, to: size, by: stride) {
            guard let prefix = full.getSlice(at: full.readerIndex, length: length) else { continue }
            try expectFailure(codec, "truncated input (\(length) of \(size) bytes)", Everything.self, prefix)
        }
    }

    static func checkGarbage(_ codec: any MessageCodec) throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var inputs: [[UInt8]] = [[0xFF], [UInt8](repeating: 0xFF, count: 64), [UInt8](repeating: 0, count: 16), Array("{]".utf8)]
        for length in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233] {
            inputs.append((0..<length).map { _ in
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                return UInt8(truncatingIfNeeded: state)
            })
        }
        for (number, bytes) in inputs.enumerated() {
            try expectFailure(codec, "garbage input #\(number) (\(bytes.count) bytes)", Everything.self, ByteBuffer(bytes: bytes))
        }
    }

    static func checkFailedEncode(_ codec: any MessageCodec) throws {
        let check = "failed encode leaves the buffer unchanged"
        var buffer = ByteBuffer()
        buffer.writeString("KEEP")
        do {
            try codec.encode(Exploding(), into: &buffer)
            throw ConformanceFailure(codec: codec.name, check: check, detail: "encoding a value whose encode(to:) throws did not throw")
        } catch let error as CohortError {
            try expect(error.code == .codecFailure, codec, check, "threw \(error.code), not codecFailure")
        } catch let failure as ConformanceFailure {
            throw failure
        } catch {
            throw ConformanceFailure(codec: codec.name, check: check, detail: "threw \(error), not CohortError(.codecFailure)")
        }
        try expect(buffer.readableBytes == 4 && buffer.getString(at: 0, length: 4) == "KEEP", codec, check, "the buffer now holds \(buffer.readableBytes) bytes")
    }

    // MARK: Helpers

    static func roundTrip<Value: Codable & Equatable>(_ codec: any MessageCodec, _ check: String, _ value: Value) throws {
        var buffer = ByteBuffer()
        try step(codec, check, "encode") { try codec.encode(value, into: &buffer) }
        let written = buffer.readableBytes
        try expect(written > 0, codec, check, "encoded to zero bytes")
        let decoded = try step(codec, check, "decode") { try codec.decode(Value.self, from: &buffer) }
        try expect(decoded == value, codec, check, "came back different: \(String(describing: decoded).prefix(300))")
        try expect(buffer.readableBytes == 0, codec, check, "decode left \(buffer.readableBytes) of \(written) bytes unread")
    }

    static func expectFailure<Value: Decodable>(_ codec: any MessageCodec, _ check: String, _ type: Value.Type, _ bytes: ByteBuffer) throws {
        var input = bytes
        do {
            let value = try codec.decode(Value.self, from: &input)
            throw ConformanceFailure(codec: codec.name, check: check, detail: "decoding succeeded with \(String(describing: value).prefix(200)) instead of throwing")
        } catch let error as CohortError {
            try expect(error.code == .codecFailure, codec, check, "threw \(error.code), not codecFailure: \(error)")
        } catch let failure as ConformanceFailure {
            throw failure
        } catch {
            throw ConformanceFailure(codec: codec.name, check: check, detail: "threw \(Swift.type(of: error)) \(error), not CohortError(.codecFailure)")
        }
    }

    static func step<T>(_ codec: any MessageCodec, _ check: String, _ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw ConformanceFailure(codec: codec.name, check: check, detail: "\(what) threw \(error)")
        }
    }

    static func expect(_ condition: Bool, _ codec: any MessageCodec, _ check: String, _ detail: @autoclosure () -> String) throws {
        if !condition { throw ConformanceFailure(codec: codec.name, check: check, detail: detail()) }
    }
}

// MARK: Sample types

extension CodecConformance {
    struct Address: Codable, Equatable, Sendable {
        var street: String
        var zip: Int?
        var tags: Set<String>
        static let sample = Address(street: "1 Infinite Loop", zip: 95014, tags: ["home", "work"])
    }

    struct Integers: Codable, Equatable, Sendable {
        var int8 = Int8.min, int16 = Int16.max, int32 = Int32.min, uint = UInt.max
        var uint8 = UInt8.max, uint16 = UInt16.max, uint32 = UInt32.max, small = -1, zero = 0
    }

    indirect enum Shape: Codable, Equatable, Sendable {
        case circle(radius: Double)
        case rect(Double, Double)
        case point
        case labelled(String, Shape?)
    }

    struct Node: Codable, Equatable, Sendable {
        var children: [Node]
        static func chain(depth: Int) -> Node {
            (0..<depth).reduce(Node(children: [])) { inner, _ in Node(children: [inner]) }
        }
    }

    struct Everything: Codable, Equatable, Sendable {
        static let fixedUUID = UUID(uuid: (0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0x4D, 0xEF, 0x80, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07))
        var flag = true
        var integers = Integers()
        var int64 = Int64.min
        var uint64 = UInt64.max
        var float: Float = -1.5
        var double = Double.pi
        var text = "héllo, 世界 👋🏽"
        var empty = ""
        var data = Data([0, 1, 2, 255])
        var bytes: [UInt8] = [9, 8, 7]
        var date = Date(timeIntervalSinceReferenceDate: 700_000_000.5)
        var uuid = fixedUUID
        var url = URL(string: "https://example.com/path?q=1")
        var some: String? = "present"
        var none: Int?
        var nested: Int?? = .some(.some(7))
        var addresses = [Address.sample, Address(street: "", zip: nil, tags: [])]
        var byName = ["home": Address.sample]
        var byNumber: [Int: [String]] = [1: ["one"], -2: []]
        var set: Set<Int> = [3, 1, 2]
        var shapes: [Shape] = [.circle(radius: 1), .labelled("nested", .rect(2, 3))]
        var matrix = [[], [1], [2, 3]]
        var emptyMap: [String: Int] = [:]
    }

    struct ProfileV1: Codable, Equatable, Sendable {
        var name: String
        var age: Int
    }

    /// A later version of ``ProfileV1``: unknown keys before, between and after the known ones.
    struct ProfileV2: Codable, Equatable, Sendable {
        var extra: [String: [Int]]
        var name: String
        var shape: Shape
        var age: Int
        var zzz: Everything
    }

    struct ExplodingError: Error {}

    /// Writes part of itself, then throws.
    struct Exploding: Encodable {
        enum Keys: String, CodingKey { case a, b, c }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(1, forKey: .a)
            var nested = container.nestedUnkeyedContainer(forKey: .b)
            try nested.encode("partial")
            try container.encode(Everything(), forKey: .c)
            throw ExplodingError()
        }
    }
}
