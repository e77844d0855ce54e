import CohortCore
import NIOCore

/// Splits the byte stream into Cohort frames, enforcing the frame cap.
struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = WireFormat.Frame
    /// The cap; a connection's handlers may raise it once the peer is admitted (see ``FrameCap``).
    let cap: FrameCap

    init(maxFrameSize: Int) {
        self.cap = FrameCap(maxFrameSize)
    }

    init(cap: FrameCap) {
        self.cap = cap
    }

    var maxFrameSize: Int { cap.value }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try WireFormat.parse(from: &buffer, maxFrameSize: cap.value) else { return .needMoreData }
        context.fireChannelRead(NIOAny(frame))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

enum Frames {
    static func hello(kind: WireFormat.Kind, member: Member, allocator: ByteBufferAllocator) -> ByteBuffer {
        var body = allocator.buffer(capacity: 128)
        WireFormat.writeMember(member, into: &body)
        var frame = allocator.buffer(capacity: WireFormat.headerSize + body.readableBytes)
        WireFormat.writeHeader(kind: kind, length: body.readableBytes, into: &frame)
        frame.writeImmutableBuffer(body)
        return frame
    }

    static func control(_ kind: WireFormat.Kind, allocator: ByteBufferAllocator) -> ByteBuffer {
        var frame = allocator.buffer(capacity: WireFormat.headerSize)
        WireFormat.writeHeader(kind: kind, length: 0, into: &frame)
        return frame
    }

    static func seq(_ kind: WireFormat.Kind, _ seq: UInt64, allocator: ByteBufferAllocator) -> ByteBuffer {
        var frame = allocator.buffer(capacity: WireFormat.headerSize + 8)
        WireFormat.writeHeader(kind: kind, length: 8, into: &frame)
        frame.writeInteger(seq)
        return frame
    }

    static func failed(_ seq: UInt64, reason: UInt8, text: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        var body = allocator.buffer(capacity: 16 + text.utf8.count)
        body.writeInteger(seq)
        body.writeInteger(reason)
        WireFormat.writeString(text, into: &body)
        var frame = allocator.buffer(capacity: WireFormat.headerSize + body.readableBytes)
        WireFormat.writeHeader(kind: .failed, length: body.readableBytes, into: &frame)
        frame.writeImmutableBuffer(body)
        return frame
    }

    static func error(_ text: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        var body = allocator.buffer(capacity: text.utf8.count + 2)
        WireFormat.writeString(text, into: &body)
        var frame = allocator.buffer(capacity: WireFormat.headerSize + body.readableBytes)
        WireFormat.writeHeader(kind: .error, length: body.readableBytes, into: &frame)
        frame.writeImmutableBuffer(body)
        return frame
    }

    /// One data frame: header + seq + type + flags + payload, built once per message.
    static func data(_ message: OutboundMessage, seq: UInt64, allocator: ByteBufferAllocator) -> ByteBuffer {
        let bodyLength = 16 + message.payload.readableBytes
        var frame = allocator.buffer(capacity: WireFormat.headerSize + bodyLength)
        WireFormat.writeHeader(kind: .data, codec: message.codec.rawValue, guarantee: message.options.guarantee.rawValue, length: bodyLength, into: &frame)
        frame.writeInteger(seq)
        frame.writeInteger(message.type.rawValue)
        frame.writeInteger(message.options.flags)
        frame.writeImmutableBuffer(message.payload)
        return frame
    }
}
