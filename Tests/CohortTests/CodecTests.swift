import CohortCodecBinary
import CohortCodecJSON
import CohortCore
import CohortTestKit
import Foundation
import NIOCore
import Testing

/// The two built-in codecs, as test arguments.
enum CodecKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case binary, json
    var codec: any MessageCodec { self == .binary ? BinaryCodec() : JSONCodec() }
    var testDescription: String { rawValue }
}

/// A message of about 1 KiB with the usual mix of fields.
struct Telemetry: ClusterMessage, Equatable {
    static let messageType = MessageType(4242)
    struct Reading: Codable, Equatable { var name: String; var value: Double; var count: Int; var ok: Bool }
    var node: UUID
    var sequence: UInt64
    var sentAt: Date
    var tags: [String: String]
    var readings: [Reading]

    static let sample = Telemetry(
        node: UUID(uuid: (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)),
        sequence: 1_234_567,
        sentAt: Date(timeIntervalSinceReferenceDate: 760_000_000.125),
        tags: ["region": "eu-west", "role": "cache"],
        readings: (0..<17).map { Reading(name: "metric.\($0)", value: Double($0) * 1.5, count: $0 * 100, ok: $0 % 3 != 0) }
    )
}

struct ProfileV1: Codable, Equatable { var name: String; var age: Int }
struct ProfileV2: Codable, Equatable { var added: [Int]; var name: String; var more: String; var age: Int; var last: Bool }

/// A map holding an array per level: two containers a level.
struct Tree: Codable, Equatable {
    var children: [Tree]
    static func chain(_ levels: Int) -> Tree { (0..<levels).reduce(Tree(children: [])) { inner, _ in Tree(children: [inner]) } }
}

/// Decodes arrays nested to any depth, for the depth limit.
struct Nest: Decodable {
    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        if !container.isAtEnd { _ = try container.decode(Nest.self) }
    }
}

struct Blob: ByteBufferWrapping, Equatable {
    var byteBuffer: ByteBuffer
    init(byteBuffer: ByteBuffer) { self.byteBuffer = byteBuffer }
}

class Base: Codable {
    var a: Int
    init(a: Int) { self.a = a }
}

/// Shares its encoder with the superclass, and also writes the superclass under `super`.
final class Derived: Base {
    enum Keys: String, CodingKey { case b }
    var b: String
    init(a: Int, b: String) {
        self.b = b
        super.init(a: a)
    }
    required init(from decoder: any Decoder) throws {
        b = try decoder.container(keyedBy: Keys.self).decode(String.self, forKey: .b)
        try super.init(from: decoder)
    }
    override func encode(to encoder: any Encoder) throws {
        try super.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(b, forKey: .b)
    }
}

struct SuperWrapped: Codable, Equatable {
    enum Keys: String, CodingKey { case own }
    var own: String
    var inner: ProfileV1
    init(own: String, inner: ProfileV1) { self.own = own; self.inner = inner }
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        own = try container.decode(String.self, forKey: .own)
        inner = try ProfileV1(from: container.superDecoder())
    }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try inner.encode(to: container.superEncoder())
        try container.encode(own, forKey: .own)
    }
}

/// Writes into a container after a sibling container was started: refused, never garbled.
struct Interleaved: Encodable {
    enum Keys: String, CodingKey { case x, y }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        var first = container.nestedUnkeyedContainer(forKey: .x)
        var second = container.nestedUnkeyedContainer(forKey: .y)
        try second.encode(1)
        try first.encode(2)
    }
}

func bytes(_ value: some Encodable) throws -> [UInt8] {
    Array(try BinaryCodec().encode(value).readableBytesView)
}

func expectCodecFailure<T: Decodable>(_ codec: any MessageCodec, _ input: [UInt8], as type: T.Type, mentioning text: String? = nil) {
    var buffer = ByteBuffer(bytes: input)
    let error = #expect(throws: CohortError.self) { try codec.decode(T.self, from: &buffer) }
    #expect(error?.code == .codecFailure)
    #expect(buffer.readerIndex == 0, "a failed decode must not consume input")
    if let text { #expect(error?.message.contains(text) == true, "\(error?.message ?? "") should mention \(text)") }
}

@Suite("Codecs")
struct CodecTests {
    @Test func binaryPassesConformance() throws { try CodecConformance.run(BinaryCodec()) }

    @Test func jsonPassesConformance() throws { try CodecConformance.run(JSONCodec(), consumesWholeBuffer: true) }

    @Test("binary round-trips every conformance sample", arguments: CodecConformance.sampleNames)
    func binaryRoundTrips(sample: String) throws {
        try CodecConformance.roundTrip(BinaryCodec(), sample: sample)
    }

    @Test(arguments: CodecKind.allCases)
    func kibTextMessageRoundTrips(kind: CodecKind) throws {
        let message = TextMessage(CodecConformance.sampleText(utf8Count: 1024))
        var buffer = try kind.codec.encode(message)
        print("1 KiB TextMessage encodes to \(buffer.readableBytes) bytes with \(kind.rawValue)")
        #expect(try kind.codec.decode(TextMessage.self, from: &buffer) == message)
        #expect(buffer.readableBytes == 0)
    }

    @Test func binaryIsSmallerThanJSONForAStructMessage() throws {
        let binary = try BinaryCodec().encode(Telemetry.sample).readableBytes
        let json = try JSONCodec().encode(Telemetry.sample).readableBytes
        print("Telemetry message: binary \(binary) bytes, json \(json) bytes")
        #expect(json >= 1024)
        #expect(binary < json)
        var buffer = try BinaryCodec().encode(Telemetry.sample)
        #expect(try BinaryCodec().decode(Telemetry.self, from: &buffer) == Telemetry.sample)
    }

    @Test(arguments: CodecKind.allCases)
    func truncatedAndGarbageInputThrowCodecFailure(kind: CodecKind) throws {
        let full = Array(try kind.codec.encode(Telemetry.sample).readableBytesView)
        for length in stride(from: 0, to: full.count, by: 7) {
            expectCodecFailure(kind.codec, Array(full[..<length]), as: Telemetry.self)
        }
        expectCodecFailure(kind.codec, [0xFF, 0xFE, 0x00, 0x7B], as: Telemetry.self)
        expectCodecFailure(kind.codec, Array("garbage in".utf8), as: Telemetry.self)
    }

    @Test(arguments: CodecKind.allCases)
    func unknownKeysAreTolerated(kind: CodecKind) throws {
        var buffer = try kind.codec.encode(ProfileV2(added: [1, 2], name: "Ada", more: "x", age: 36, last: true))
        #expect(try kind.codec.decode(ProfileV1.self, from: &buffer) == ProfileV1(name: "Ada", age: 36))
    }

    @Test func jsonErrorsNameTheTypeAndPath() throws {
        var buffer = ByteBuffer(string: #"{"age": 3, "name": 5}"#)
        let error = #expect(throws: CohortError.self) { try JSONCodec().decode(ProfileV1.self, from: &buffer) }
        #expect(error?.code == .codecFailure)
        #expect(error?.message.contains("ProfileV1") == true)
        #expect(error?.message.contains("root.name") == true)
        #expect(error?.cause is DecodingError)
        #expect(String(buffer: try JSONCodec().encode(ProfileV1(name: "n", age: 1))) == #"{"age":1,"name":"n"}"#)
    }

    @Test func binaryFormatBytes() throws {
        #expect(try bytes(Int?.none) == [0x00])
        #expect(try bytes(false) == [0x01])
        #expect(try bytes(true) == [0x02])
        #expect(try bytes(0) == [0x03, 0x00])
        #expect(try bytes(-1) == [0x03, 0x01])
        #expect(try bytes(300) == [0x03, 0xD8, 0x04])
        #expect(try bytes(Int64.min) == [0x03] + [UInt8](repeating: 0xFF, count: 9) + [0x01])
        #expect(try bytes(UInt8(200)) == [0x04, 0xC8, 0x01])
        #expect(try bytes(Float(1)) == [0x03, 0x02])
        #expect(try bytes(Float(0.5)) == [0x05, 0x3F, 0x00, 0x00, 0x00])
        #expect(try bytes(-2.0) == [0x03, 0x03])
        #expect(try bytes(-0.0) == [0x05, 0x80, 0x00, 0x00, 0x00])
        #expect(try bytes(0.1) == [0x06, 0x3F, 0xB9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9A])
        #expect(try bytes("hé") == [0x07, 0x03, 0x68, 0xC3, 0xA9])
        #expect(try bytes(Data([1, 2])) == [0x08, 0x02, 0x01, 0x02])
        #expect(try bytes([UInt8]([1, 2])) == [0x08, 0x02, 0x01, 0x02])
        #expect(try bytes([true]) == [0x0B, 1, 0x02])
        #expect(try bytes([Bool](repeating: true, count: 300)) == [0x09, 0, 0, 0x01, 0x2C] + [UInt8](repeating: 0x02, count: 300))
        #expect(try bytes(ProfileV1(name: "A", age: 2)) == [0x0C, 2, 8] + Array("name".utf8) + [0x07, 1, 0x41, 6] + Array("age".utf8) + [0x03, 4])
        #expect(try bytes([7: true]) == [0x0C, 1, 29, 0x02])
        #expect(try bytes(["007": true]) == [0x0C, 1, 6, 0x30, 0x30, 0x37, 0x02])
        #expect(try bytes([Int]?.some([])) == [0x0B, 0])
    }

    @Test func binaryKeysMatchInAnyOrder() throws {
        let input: [UInt8] = [0x0C, 3, 6] + Array("age".utf8) + [0x03, 4, 2, 0x7A, 0x00, 8] + Array("name".utf8) + [0x07, 1, 0x41]
        var buffer = ByteBuffer(bytes: input)
        #expect(try BinaryCodec().decode(ProfileV1.self, from: &buffer) == ProfileV1(name: "A", age: 2))
    }

    @Test func binaryWidensLargeContainers() throws {
        let big = (0..<1000).map { ["k\($0)": [$0, -$0]] }
        var buffer = try BinaryCodec().encode(["list": big])
        #expect(try BinaryCodec().decode([String: [[String: [Int]]]].self, from: &buffer) == ["list": big])
        let keys = Dictionary(uniqueKeysWithValues: (0..<300).map { ($0, String($0)) })
        var map = try BinaryCodec().encode(keys)
        #expect(map.getInteger(at: 0, as: UInt8.self) == 0x0A)
        #expect(try BinaryCodec().decode([Int: String].self, from: &map) == keys)
    }

    @Test func binaryFloatingPointIsBitExact() throws {
        let doubles: [Double] = [.nan, -.nan, .signalingNaN, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, 0x1p53, -0x1p53 + 1, 1e300, 0.1]
        var buffer = try BinaryCodec().encode(doubles)
        #expect(try BinaryCodec().decode([Double].self, from: &buffer).map(\.bitPattern) == doubles.map(\.bitPattern))
        let floats: [Float] = [.nan, -0.0, .infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 16_777_217, 0.1]
        buffer = try BinaryCodec().encode(floats)
        #expect(try BinaryCodec().decode([Float].self, from: &buffer).map(\.bitPattern) == floats.map(\.bitPattern))
        expectCodecFailure(BinaryCodec(), try bytes(Double.greatestFiniteMagnitude), as: Float.self, mentioning: "does not fit")
        var widened = try BinaryCodec().encode(Float(0.1))
        #expect(try BinaryCodec().decode(Double.self, from: &widened) == Double(Float(0.1)))
    }

    @Test func binaryMissingKeyIsKeyNotFound() throws {
        var buffer = try BinaryCodec().encode(ProfileV1(name: "A", age: 2))
        let error = #expect(throws: CohortError.self) { try BinaryCodec().decode(ProfileV2.self, from: &buffer) }
        #expect(error?.code == .codecFailure)
        guard case .keyNotFound(let key, _) = error?.cause as? DecodingError else {
            Issue.record("expected keyNotFound, got \(String(describing: error?.cause))")
            return
        }
        #expect(key.stringValue == "added")
    }

    @Test func binaryRefusesHostileInput() throws {
        let codec = BinaryCodec()
        let nest = { (depth: Int) in Array([[UInt8]](repeating: [0x0B, 1], count: depth - 1).joined()) + [0x0B, 0] }
        var ok = ByteBuffer(bytes: nest(64))
        _ = try codec.decode(Nest.self, from: &ok)
        expectCodecFailure(codec, nest(65), as: Nest.self, mentioning: "deep")
        expectCodecFailure(codec, [0x09, 0xFF, 0xFF, 0xFF, 0xFF, 0x00], as: [Int?].self, mentioning: "count")
        expectCodecFailure(codec, [0x0A, 0, 0, 0, 2, 0x02, 0x00, 0x00], as: [String: Int?].self, mentioning: "count")
        expectCodecFailure(codec, [0x0C, 0xFF, 0x00], as: [String: Int?].self, mentioning: "count")
        expectCodecFailure(codec, [0x07, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x41], as: String.self, mentioning: "length")
        expectCodecFailure(codec, [0x08, 0x05, 0x01], as: Data.self, mentioning: "length")
        expectCodecFailure(codec, [0x03] + [UInt8](repeating: 0xFF, count: 10) + [0x01], as: Int.self, mentioning: "64 bits")
        expectCodecFailure(codec, [0x7F], as: Int.self, mentioning: "tag")
        expectCodecFailure(codec, [0x07, 0x02, 0xC3, 0x28], as: String.self, mentioning: "UTF-8")
        expectCodecFailure(codec, [0x0C, 1, 0x04, 0xC3, 0x28, 0x02], as: [String: Bool].self, mentioning: "UTF-8")
        expectCodecFailure(codec, [0x0C, 1, 0xFE, 0x01, 0x02], as: [String: Bool].self, mentioning: "key")
        expectCodecFailure(codec, [0x05, 0x7F, 0x80, 0x00, 0x00], as: Int.self, mentioning: "does not fit")
        expectCodecFailure(codec, [0x03, 0xD8, 0x04], as: Int8.self, mentioning: "does not fit")
        expectCodecFailure(codec, [0x06, 0x3F], as: Double.self, mentioning: "ends early")
        expectCodecFailure(codec, [], as: Int.self, mentioning: "ends early")
    }

    @Test func binaryMutatedInputNeverCrashes() throws {
        let valid = Array(try BinaryCodec().encode(Telemetry.sample).readableBytesView)
        for position in valid.indices {
            for replacement: UInt8 in [0x00, 0x0C, 0xFF] where valid[position] != replacement {
                var input = valid
                input[position] = replacement
                var buffer = ByteBuffer(bytes: input)
                do { _ = try BinaryCodec().decode(Telemetry.self, from: &buffer) } catch let error as CohortError {
                    #expect(error.code == .codecFailure)
                }
            }
        }
    }

    @Test func binaryEncodingIsSinglePassIntoTheCallersStorage() throws {
        var buffer = ByteBufferAllocator().buffer(capacity: 4096)
        buffer.writeString("head")
        let before = buffer.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        try BinaryCodec().encode(Telemetry.sample, into: &buffer)
        #expect(buffer.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) } == before)
        #expect(buffer.readString(length: 4) == "head")
        #expect(try BinaryCodec().decode(Telemetry.self, from: &buffer) == Telemetry.sample)
    }

    @Test func binaryRefusesTooDeepOrInterleavedEncoding() throws {
        var buffer = ByteBuffer(string: "x")
        try BinaryCodec().encode(Tree.chain(31), into: &buffer)  // 64 nested containers: the limit
        let written = buffer.readableBytes
        var copy = buffer
        copy.moveReaderIndex(forwardBy: 1)
        #expect(try BinaryCodec().decode(Tree.self, from: &copy) == Tree.chain(31))
        let error = #expect(throws: CohortError.self) { try BinaryCodec().encode(Tree.chain(32), into: &buffer) }
        #expect(error?.message.contains("deep") == true)
        let misuse = #expect(throws: CohortError.self) { try BinaryCodec().encode(Interleaved(), into: &buffer) }
        #expect(misuse?.code == .codecFailure)
        #expect(buffer.readableBytes == written, "failed encodes must leave the buffer as it was")
    }

    @Test func binaryRawBytesFastPaths() throws {
        let payload = ByteBuffer(bytes: [UInt8](repeating: 0xAB, count: 1000))
        #expect(try bytes(payload).count == 1 + 2 + 1000)
        #expect(try bytes(Blob(byteBuffer: payload)).count == 1 + 2 + 1000)
        var buffer = try BinaryCodec().encode([Blob(byteBuffer: payload)])
        #expect(try BinaryCodec().decode([Blob].self, from: &buffer) == [Blob(byteBuffer: payload)])
        var base64 = try JSONCodec().encode(payload)
        #expect(try JSONCodec().decode(ByteBuffer.self, from: &base64) == payload)
    }

    @Test func binarySupportsClassesAndSuperEncoders() throws {
        var buffer = try BinaryCodec().encode(Derived(a: 1, b: "two"))
        let derived = try BinaryCodec().decode(Derived.self, from: &buffer)
        #expect(derived.a == 1 && derived.b == "two")
        let wrapped = SuperWrapped(own: "o", inner: ProfileV1(name: "i", age: 9))
        var other = try BinaryCodec().encode(wrapped)
        #expect(try BinaryCodec().decode(SuperWrapped.self, from: &other) == wrapped)
    }

    @Test func registryDecodesWithEitherCodec() throws {
        var registry = MessageRegistry()
        try registry.register(Telemetry.self)
        for kind in CodecKind.allCases {
            var buffer = try kind.codec.encode(Telemetry.sample)
            let message = try registry.decode(Telemetry.messageType, codec: kind.codec, from: &buffer)
            #expect(message as? Telemetry == Telemetry.sample)
        }
    }

    @Test func pluginFactoriesMakeTheirCodecs() throws {
        let registry = PluginRegistry()
        try registry.register(BinaryCodecPlugin())
        try registry.register(JSONCodecPlugin())
        #expect(registry.plugins.map(\.id) == ["codec.binary", "codec.json"])
        #expect(registry.plugins.allSatisfy { $0.kind == .codec && $0.version == "1.0.0" && !$0.summary.isEmpty })
        #expect(try registry.factory("binary", kind: .codec).makeCodec(settings: PluginSettings()).id == .binary)
        #expect(try registry.factory("codec.json", kind: .codec).makeCodec(settings: PluginSettings()).name == "json")
        #expect(CodecSet([BinaryCodec(), JSONCodec()]).all.map(\.name) == ["binary", "json"])
    }
}
