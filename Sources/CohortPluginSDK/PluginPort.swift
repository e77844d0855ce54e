import CCohortPluginABI
import CohortCore
import NIOConcurrencyHelpers
import NIOCore

/// Something that answers the requests arriving through a port this side made.
///
/// `handle` must not block: work that waits runs in a task of its own, which answers later.
protocol PluginPortHandler: AnyObject, Sendable {
    /// A request arrived; `reply` is nil when the caller wants no answer.
    func handle(operation: UInt32, bytes: ByteBuffer, reply: PluginReply?)
    /// The other side let go of the port; it will not call again.
    func portReleased()
}

/// The answer channel of one request. Answer exactly once.
struct PluginReply: @unchecked Sendable {
    let context: UnsafeMutableRawPointer?
    let function: cohort_plugin_reply_fn

    /// Answers with bytes.
    func succeed(_ bytes: ByteBuffer) {
        bytes.withUnsafeReadableBytes { raw in
            function(context, 0, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), raw.count)
        }
    }

    /// Answers with no bytes.
    func succeed() {
        function(context, 0, nil, 0)
    }

    /// Answers with an error (its code and message cross the boundary).
    func fail(_ error: any Error) {
        var text: String
        if let error = error as? CohortError {
            text = "\(error.code)\n\(error.message)"
        } else {
            text = "\(CohortError.Code.internal)\n\(error)"
        }
        text.withUTF8 { utf8 in function(context, 1, utf8.baseAddress, utf8.count) }
    }
}

/// Reads an error that crossed the boundary (`code`, a newline, the message).
func pluginError(fromUTF8 bytes: UnsafeBufferPointer<UInt8>) -> CohortError {
    let text = String(decoding: bytes, as: UTF8.self)
    guard let newline = text.firstIndex(of: "\n") else { return CohortError(.internal, text) }
    let code = String(text[..<newline])
    return CohortError(.custom(code), String(text[text.index(after: newline)...]))
}

private final class PortBox {
    let handler: any PluginPortHandler
    init(_ handler: any PluginPortHandler) { self.handler = handler }
}

/// Makes a port through which the other side calls `handler`. The port keeps the handler alive
/// until the other side releases it.
func makePort(_ handler: any PluginPortHandler) -> cohort_plugin_port {
    cohort_plugin_port(
        context: Unmanaged.passRetained(PortBox(handler)).toOpaque(),
        invoke: { context, operation, bytes, count, replyContext, reply in
            guard let context else { return }
            let box = Unmanaged<PortBox>.fromOpaque(context).takeUnretainedValue()
            let buffer = ByteBuffer(bytes: UnsafeBufferPointer(start: bytes, count: bytes == nil ? 0 : count))
            box.handler.handle(operation: operation, bytes: buffer, reply: reply.map { PluginReply(context: replyContext, function: $0) })
        },
        release: { context in
            guard let context else { return }
            Unmanaged<PortBox>.fromOpaque(context).takeRetainedValue().handler.portReleased()
        }
    )
}

/// The other side's port: how this side calls it. Releases the port when this object goes.
final class RemotePort: @unchecked Sendable {
    private let port: cohort_plugin_port
    /// What the other side is, for error messages.
    let name: String

    init(_ port: cohort_plugin_port, name: String) {
        self.port = port
        self.name = name
    }

    deinit {
        port.release?(port.context)
    }

    private func invoke(_ operation: UInt32, _ bytes: ByteBuffer, replyContext: UnsafeMutableRawPointer?, reply: cohort_plugin_reply_fn?) {
        guard let invoke = port.invoke else {
            if let reply {
                let text = "\(CohortError.Code.pluginLoadFailed)\n\(name) has no invoke function"
                var copy = text
                copy.withUTF8 { reply(replyContext, 1, $0.baseAddress, $0.count) }
            }
            return
        }
        bytes.withUnsafeReadableBytes { raw in
            invoke(port.context, operation, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), raw.count, replyContext, reply)
        }
    }

    /// Sends a request that needs no answer.
    func tell(_ operation: UInt32, _ bytes: ByteBuffer = ByteBuffer()) {
        invoke(operation, bytes, replyContext: nil, reply: nil)
    }

    /// Sends a request and waits for its answer.
    func request(_ operation: UInt32, _ bytes: ByteBuffer = ByteBuffer()) async throws -> ByteBuffer {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ByteBuffer, any Error>) in
            let box = Unmanaged.passRetained(AsyncReplyBox(continuation)).toOpaque()
            invoke(operation, bytes, replyContext: box, reply: { context, status, bytes, count in
                guard let context else { return }
                let box = Unmanaged<AsyncReplyBox>.fromOpaque(context).takeRetainedValue()
                box.continuation.resume(with: replyResult(status, bytes, count))
            })
        }
    }

    /// Sends a request the other side must answer before `invoke` returns (descriptions, codec
    /// work), and returns the answer.
    func requestNow(_ operation: UInt32, _ bytes: ByteBuffer = ByteBuffer()) throws -> ByteBuffer {
        let box = SyncReplyBox()
        let context = Unmanaged.passRetained(box).toOpaque()
        invoke(operation, bytes, replyContext: context, reply: { context, status, bytes, count in
            guard let context else { return }
            let box = Unmanaged<SyncReplyBox>.fromOpaque(context).takeRetainedValue()
            box.result.withLockedValue { $0 = replyResult(status, bytes, count) }
        })
        guard let result = box.result.withLockedValue({ $0 }) else {
            throw CohortError(.pluginLoadFailed, "\(name) did not answer operation \(operation) before returning; descriptions and codec operations must be answered at once")
        }
        return try result.get()
    }
}

private func replyResult(_ status: Int32, _ bytes: UnsafePointer<UInt8>?, _ count: Int) -> Result<ByteBuffer, any Error> {
    let view = UnsafeBufferPointer(start: bytes, count: bytes == nil ? 0 : count)
    if status == 0 { return .success(ByteBuffer(bytes: view)) }
    return .failure(pluginError(fromUTF8: view))
}

private final class AsyncReplyBox {
    let continuation: CheckedContinuation<ByteBuffer, any Error>
    init(_ continuation: CheckedContinuation<ByteBuffer, any Error>) { self.continuation = continuation }
}

private final class SyncReplyBox: Sendable {
    let result = NIOLockedValueBox<Result<ByteBuffer, any Error>?>(nil)
}

/// The operations of the boundary. Numbers are part of the ABI: never reuse one.
enum PluginOperation {
    // Any instance.
    /// Answer at once with what the instance is (codec: id and name; discovery: name).
    static let describe: UInt32 = 1
    /// Plugin → host: a log record.
    static let log: UInt32 = 2

    // Transport, host → plugin.
    static let start: UInt32 = 10
    static let handshake: UInt32 = 11
    static let send: UInt32 = 12
    static let heartbeat: UInt32 = 13
    static let probe: UInt32 = 14
    static let leave: UInt32 = 15
    static let forget: UInt32 = 16
    static let shutdown: UInt32 = 17

    // Transport, plugin → host (the delegate).
    static let accepted: UInt32 = 30
    static let heard: UInt32 = 31
    static let activity: UInt32 = 32
    static let received: UInt32 = 33
    static let lostConnection: UInt32 = 34
    static let memberLeft: UInt32 = 35
    static let asyncFailed: UInt32 = 36

    // Codec, host → plugin; answered at once.
    static let encode: UInt32 = 51
    static let decode: UInt32 = 52

    // Discovery.
    static let run: UInt32 = 71
    static let cancelRun: UInt32 = 72
    static let discoveryLeave: UInt32 = 73
    /// Plugin → host: something discovery found.
    static let discovered: UInt32 = 80

    // Interceptor, host → plugin; answered once the plugin's stage passed the message on or
    // stopped it (added in the same ABI 3: new numbers only, the ones above are unchanged).
    /// Outbound: members, message → verdict 0 + the message to pass on, or 1 + the report.
    static let interceptSend: UInt32 = 90
    /// Inbound: message → verdict 0 + the message to pass on, or 1 + the delivery result.
    static let interceptReceive: UInt32 = 91
}
