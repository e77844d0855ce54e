import Cohort
import NIOCore
import Testing

@Suite("Compression envelope and decompression cap")
struct CompressionTests {
    func zeros(_ count: Int) -> ByteBuffer { ByteBuffer(repeating: 0, count: count) }

    @Test(arguments: Compression.Algorithm.allCases)
    func roundTrip(_ algorithm: Compression.Algorithm) throws {
        var text = ByteBuffer()
        for i in 0..<2000 { text.writeString("session attribute \(i % 17); ") }
        let envelope = try Compression.compress(text, settings: .init(algorithm: algorithm))
        #expect(envelope.readableBytes < text.readableBytes / 4)
        let plain = try Compression.decompress(envelope, maxSize: 1 << 20)
        #expect(plain == text)
    }

    @Test func aBombAnnouncingMoreThanTheCapIsRefusedWithoutDecompressing() throws {
        // 64 MiB of zeros compress to under 300 KiB at level 1.
        let envelope = try Compression.compress(zeros(64 * 1024 * 1024), settings: .init())
        #expect(envelope.readableBytes < 1024 * 1024, "64 MiB of zeros compress more than 64 : 1")
        let error = try #require(throws: CohortError.self) { try Compression.decompress(envelope, maxSize: 1024 * 1024) }
        #expect(error.code == .decompressionRefused)
        #expect(error.message.contains("maxDecompressedSize"))
    }

    @Test func aBombThatLiesAboutItsLengthIsRefused() throws {
        var envelope = try Compression.compress(zeros(8 * 1024 * 1024), settings: .init())
        // Announce 1 KiB: the output buffer is sized from the announcement, and the stream overflows it.
        envelope.setInteger(UInt64(1024), at: envelope.readerIndex + 1)
        let error = try #require(throws: CohortError.self) { try Compression.decompress(envelope, maxSize: 1 << 30) }
        #expect(error.code == .decompressionRefused)
        #expect(error.message.contains("more than"))
    }

    @Test func anAnnouncementDeflateCannotProduceIsRefused() throws {
        var envelope = ByteBuffer()
        envelope.writeInteger(UInt8(1))
        envelope.writeInteger(UInt64(100 * 1024 * 1024))
        envelope.writeBytes([1, 2, 3, 4])
        let error = try #require(throws: CohortError.self) { try Compression.decompress(envelope, maxSize: 1 << 30) }
        #expect(error.code == .decompressionRefused)
    }

    @Test func corruptAndTruncatedEnvelopesAreRefused() throws {
        let good = try Compression.compress(ByteBuffer(string: String(repeating: "abc", count: 1000)), settings: .init())
        var truncated = good
        truncated.moveWriterIndex(to: good.writerIndex - 10)
        #expect(throws: CohortError.self) { try Compression.decompress(truncated, maxSize: 1 << 20) }
        var garbage = ByteBuffer()
        garbage.writeInteger(UInt8(2))
        garbage.writeInteger(UInt64(100))
        garbage.writeBytes(Array(repeating: 0xFF, count: 50))
        #expect(throws: CohortError.self) { try Compression.decompress(garbage, maxSize: 1 << 20) }
        var unknown = good
        unknown.setInteger(UInt8(7), at: unknown.readerIndex)
        #expect(throws: CohortError.self) { try Compression.decompress(unknown, maxSize: 1 << 20) }
        #expect(throws: CohortError.self) { try Compression.decompress(ByteBuffer(bytes: [1, 0]), maxSize: 1 << 20) }
    }
}
