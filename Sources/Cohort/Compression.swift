import CohortCore
import CompressNIO
import Logging
import Metrics
import NIOCore

/// Compresses message payloads above a minimum size (Tribes' GzipInterceptor), with a hard cap
/// on what a receiver decompresses.
///
/// **A sender's choice, understood by every receiver.** The compressed payload is an envelope
/// (algorithm, announced length, compressed bytes) and the frame carries the flag
/// ``MessageFlags/compressed``; every Cohort node decompresses a flagged message — with this
/// stage, or, on a node that did not configure it, in the channel's dispatcher with the default
/// cap — so a cluster may mix nodes with and without compression.
///
/// **Bombs are refused.** The announced length must be within ``Settings/maxDecompressedSize``
/// and within what deflate can produce from the bytes received (1,032 : 1); the output buffer is
/// sized from that bound, never from the announced length alone, and a stream that produces
/// more (or less) than it announced is refused. A refusal is a clear
/// ``CohortError/Code/decompressionRefused`` error, returned to the sender as a rejection,
/// logged and counted (`cohort.compression.refused`).
///
/// Envelope: `algorithm u8 (1 deflate, 2 gzip) · length u64 (big-endian) · compressed bytes`.
public struct Compression: Interceptor {
    /// The compression formats.
    public enum Algorithm: String, Sendable, Codable, CaseIterable {
        /// Raw deflate (RFC 1951): the smallest envelope.
        case deflate
        /// gzip (RFC 1952): deflate with a header and a CRC-32 of the data.
        case gzip

        var wire: UInt8 {
            switch self {
            case .deflate: return 1
            case .gzip: return 2
            }
        }

        init?(wire: UInt8) {
            switch wire {
            case 1: self = .deflate
            case 2: self = .gzip
            default: return nil
            }
        }

        var zlib: ZlibAlgorithm {
            switch self {
            case .deflate: return .deflate
            case .gzip: return .gzip
            }
        }
    }

    /// Tunables.
    public struct Settings: Sendable, Equatable {
        /// The format written (a receiver reads both).
        public var algorithm: Algorithm
        /// Payloads smaller than this are sent as they are.
        public var minSize: Int
        /// zlib level, 1 (fastest) to 9 (smallest).
        public var level: Int
        /// The most bytes a received message may decompress to.
        public var maxDecompressedSize: Int

        public init(algorithm: Algorithm = .deflate, minSize: Int = 1024, level: Int = 1, maxDecompressedSize: Int = 128 * 1024 * 1024) {
            self.algorithm = algorithm
            self.minSize = minSize
            self.level = level
            self.maxDecompressedSize = maxDecompressedSize
        }
    }

    /// Bytes before the compressed data.
    public static let envelopeHeaderSize = 9
    /// The most a deflate stream expands: 1,032 output bytes per input byte, plus a margin.
    static let maxRatio = 1032

    public let settings: Settings
    private let logger: Logger
    private let allocator = ByteBufferAllocator()
    private let refusedCounter = Counter(label: "cohort.compression.refused")
    private let compressedCounter = Counter(label: "cohort.compression.compressed")

    /// Creates the stage.
    public init(settings: Settings = Settings(), logger: Logger = Logger(label: "cohort.compression")) {
        self.settings = settings
        self.logger = logger
    }

    public var name: String { "compression" }

    public func send(_ message: OutboundMessage, to members: [Member], next: InterceptorNext) async -> SendReport {
        guard message.payload.readableBytes >= settings.minSize, message.options.flags & MessageFlags.compressed == 0,
              let envelope = try? Self.compress(message.payload, settings: settings, allocator: allocator),
              envelope.readableBytes < message.payload.readableBytes
        else { return await next.send(message, to: members) }
        compressedCounter.increment()
        var compressed = message
        compressed.payload = envelope
        compressed.options.flags |= MessageFlags.compressed
        return await next.send(compressed, to: members)
    }

    public func receive(_ message: InboundMessage, next: InterceptorNext) async -> DeliveryResult {
        guard message.flags & MessageFlags.compressed != 0 else { return await next.receive(message) }
        switch Self.decompressed(message, maxSize: settings.maxDecompressedSize) {
        case .success(let plain):
            return await next.receive(plain)
        case .failure(let error):
            refusedCounter.increment()
            logger.warning("compression: refused a message from \(message.sender.name): \(error.message)")
            return .rejected(error.message)
        }
    }

    /// Compresses a payload into an envelope.
    public static func compress(_ payload: ByteBuffer, settings: Settings, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        var configuration = ZlibConfiguration()
        configuration.compressionLevel = Int32(min(9, max(1, settings.level)))
        let compressor = try ZlibCompressor(algorithm: settings.algorithm.zlib, configuration: configuration)
        var input = payload
        var output = allocator.buffer(capacity: envelopeHeaderSize + compressor.maxSize(from: input))
        output.writeInteger(settings.algorithm.wire)
        output.writeInteger(UInt64(payload.readableBytes))
        try compressor.deflate(from: &input, to: &output, flush: .finish)
        return output
    }

    /// The message with its payload decompressed and the flag cleared.
    static func decompressed(_ message: InboundMessage, maxSize: Int) -> Result<InboundMessage, CohortError> {
        do {
            var plain = message
            plain.payload = try decompress(message.payload, maxSize: maxSize)
            plain.flags &= ~MessageFlags.compressed
            return .success(plain)
        } catch let error as CohortError {
            return .failure(error)
        } catch {
            return .failure(CohortError(.decompressionRefused, "\(error)"))
        }
    }

    /// Decompresses an envelope, refusing more than `maxSize` bytes of output.
    ///
    /// - Throws: ``CohortError/Code/decompressionRefused`` for a bomb (an announced or actual
    ///   length above the cap or above what the compressed bytes can produce), corrupt data, or
    ///   an unknown algorithm.
    public static func decompress(_ envelope: ByteBuffer, maxSize: Int) throws -> ByteBuffer {
        var input = envelope
        guard let wire = input.readInteger(as: UInt8.self), let announced = input.readInteger(as: UInt64.self) else {
            throw CohortError(.decompressionRefused, "truncated compression envelope (\(envelope.readableBytes) bytes)")
        }
        guard let algorithm = Algorithm(wire: wire) else {
            throw CohortError(.decompressionRefused, "unknown compression algorithm \(wire) (this node reads 1 deflate, 2 gzip); run the same Cohort release on every member")
        }
        guard announced <= UInt64(maxSize) else {
            throw CohortError(.decompressionRefused, "a compressed message announces \(announced) bytes, above this node's maxDecompressedSize of \(maxSize); refused as a possible decompression bomb (raise compression's maxDecompressedSize on every member if such messages are intended)")
        }
        let possible = UInt64(input.readableBytes) * UInt64(maxRatio) + 1024
        guard announced <= possible else {
            throw CohortError(.decompressionRefused, "a compressed message of \(input.readableBytes) bytes announces \(announced) bytes, more than \(algorithm.rawValue) can produce from it; refused as corrupt")
        }
        let length = Int(announced)
        // One byte more than announced: a stream that is longer than it says overflows it.
        var output = ByteBufferAllocator().buffer(capacity: length + 1)
        do {
            let decompressor = try ZlibDecompressor(algorithm: algorithm.zlib)
            try decompressor.inflate(from: &input, to: &output)
        } catch let error as CompressNIOError where error == .bufferOverflow {
            throw CohortError(.decompressionRefused, "a compressed message decompresses to more than the \(announced) bytes it announced; refused as a possible decompression bomb")
        } catch let error as CompressNIOError where error == .inputBufferOverflow {
            throw CohortError(.decompressionRefused, "a compressed message ends before its \(algorithm.rawValue) stream does (truncated)")
        } catch {
            throw CohortError(.decompressionRefused, "a compressed message does not decompress (\(algorithm.rawValue)): \(error)")
        }
        guard output.readableBytes == length else {
            throw CohortError(.decompressionRefused, "a compressed message decompresses to \(output.readableBytes) bytes, not the \(announced) it announced")
        }
        return output
    }
}
