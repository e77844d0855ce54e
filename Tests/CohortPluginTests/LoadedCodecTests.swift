import Cohort
import CohortCodecBinary
import CohortCodecJSON
import CohortPluginSDK
import CohortTestKit
import Foundation
import NIOCore
import Testing

/// The codecs of `libCohortCodecBinaryPlugin.so` and `libCohortCodecJSONPlugin.so`, loaded at
/// run time, behave like the built-in ones and agree with them byte for byte.
@Suite("Loaded codecs", .enabled(if: PluginFiles.allBuilt, "the plugin libraries are not built next to the tests (run swift build)"))
struct LoadedCodecTests {
    enum Library: String, CaseIterable, Sendable {
        case binary, json

        var product: String { self == .binary ? PluginFiles.binary : PluginFiles.json }
        var id: String { "codec.\(rawValue)" }
        var builtIn: any MessageCodec { self == .binary ? BinaryCodec() : JSONCodec() }
        /// JSON is not self-delimiting: a payload is always one value.
        var consumesWholeBuffer: Bool { self == .json }

        func load() throws -> any MessageCodec {
            try PluginFiles.factory(product, id: id, kind: .codec).makeCodec(settings: PluginSettings())
        }
    }

    @Test(arguments: Library.allCases)
    func loadedCodecPassesConformance(library: Library) throws {
        let codec = try library.load()
        #expect((codec as? any LoadedPluginPart)?.library == PluginFiles.path(library.product), "the codec is not the loaded library's")
        #expect(codec.name == library.rawValue)
        #expect(codec.id == library.builtIn.id)
        try CodecConformance.run(codec, consumesWholeBuffer: library.consumesWholeBuffer)
    }

    @Test(arguments: Library.allCases)
    func loadedCodecRoundTripsCohortTypes(library: Library) throws {
        let codec = try library.load()
        let member = Member(
            name: "node-ü",
            endpoint: Endpoint(host: "::1", port: 4001),
            domain: "cache",
            metadata: ["zone": "b", "": "empty key"],
            startTime: 1_700_000_000_123
        )
        try roundTrip(codec, TextMessage(CodecConformance.sampleText(utf8Count: 1024)))
        try roundTrip(codec, TextMessage(""))
        try roundTrip(codec, PluginGreeting(text: "grüße 👋", number: -7))
        try roundTrip(codec, member)
        try roundTrip(codec, MemberID.random())
        try roundTrip(codec, Endpoint(host: "127.0.0.1", port: 0))
        try roundTrip(codec, [MessageType(1), MessageType(MessageType.firstApplicationID)])
        try roundTrip(codec, DeliveryGuarantee.allCases)
        try roundTrip(codec, TransportSettings(maxFrameSize: 65_536, connectTimeout: .milliseconds(250)))
        // Equality of Member is by id only: compare every field.
        var buffer = try codec.encode(member)
        let back = try codec.decode(Member.self, from: &buffer)
        #expect([back.name, back.endpoint.description, back.domain] == [member.name, member.endpoint.description, member.domain])
        #expect(back.metadata == member.metadata && back.startTime == member.startTime)
    }

    @Test(arguments: Library.allCases)
    func loadedAndBuiltInCodecsAgree(library: Library) throws {
        let loaded = try library.load()
        let builtIn = library.builtIn
        let message = PluginGreeting(text: CodecConformance.sampleText(utf8Count: 300), number: 42)
        let fromLoaded = try loaded.encode(message)
        let fromBuiltIn = try builtIn.encode(message)
        if library == .binary {
            #expect(fromLoaded == fromBuiltIn, "the loaded and the built-in binary codec write different bytes")
        }
        var crossed = fromLoaded
        #expect(try builtIn.decode(PluginGreeting.self, from: &crossed) == message)
        var back = fromBuiltIn
        #expect(try loaded.decode(PluginGreeting.self, from: &back) == message)
    }

    @Test(arguments: Library.allCases)
    func loadedCodecFailsCleanlyOnGarbage(library: Library) throws {
        let codec = try library.load()
        var garbage = ByteBuffer(bytes: [0xFF, 0x00, 0x13, 0x37])
        #expect(throws: CohortError.self) { try codec.decode(Member.self, from: &garbage) }
    }

    private func roundTrip<Value: Codable & Equatable>(_ codec: any MessageCodec, _ value: Value, sourceLocation: SourceLocation = #_sourceLocation) throws {
        var buffer = try codec.encode(value)
        let decoded = try codec.decode(Value.self, from: &buffer)
        #expect(decoded == value, "\(Value.self) came back as \(decoded)", sourceLocation: sourceLocation)
        #expect(buffer.readableBytes == 0, "\(buffer.readableBytes) bytes left after decoding \(Value.self)", sourceLocation: sourceLocation)
    }
}
