import Cohort
import CohortDiscoveryKubernetes
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A local HTTPS stand-in for the Kubernetes API server, on 127.0.0.1 with a kernel-chosen port
/// and a certificate from ``TestPKI``. It records every request and answers what the test's
/// responder says — including slow, truncated and never-ending answers.
///
/// HTTP/1.1 is spoken by hand (one request per connection, then `Connection: close`) so that
/// faults can be injected byte by byte.
final class KubernetesAPIStub: Sendable {
    /// One request as received.
    struct Request: Sendable {
        var method: String
        var path: String
        /// The raw (still percent-encoded) query, without `?`.
        var query: String
        var authorization: String?

        /// A query parameter, percent-decoded.
        func parameter(_ name: String) -> String? {
            for pair in query.split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.first.map(String.init) == name {
                    return parts.count > 1 ? String(parts[1]).removingPercentEncoding : ""
                }
            }
            return nil
        }

        /// The raw value of a query parameter.
        func rawParameter(_ name: String) -> String? {
            query.split(separator: "&").first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
        }

        /// The bearer token sent, if any.
        var bearer: String? {
            guard let authorization, authorization.hasPrefix("Bearer ") else { return nil }
            return String(authorization.dropFirst("Bearer ".count))
        }
    }

    /// What to answer.
    indirect enum Reply: Sendable {
        /// A complete answer.
        case json(status: Int, body: String)
        /// The same answer, after a delay.
        case delayed(Duration, Reply)
        /// Declares the whole body's length, sends only `bytes` of it and closes the connection.
        case truncated(body: String, bytes: Int)
        /// Never answers (the connection stays open until the stub closes).
        case hang

        /// A `Status` answer as the API server sends for errors.
        static func status(_ code: Int, reason: String, message: String) -> Reply {
            let object: [String: Any] = ["kind": "Status", "apiVersion": "v1", "metadata": [String: Any](), "status": "Failure", "message": message, "reason": reason, "code": code]
            return .json(status: code, body: PodListJSON.render(object))
        }
    }

    typealias Responder = @Sendable (Request) -> Reply

    private struct State {
        var requests: [Request] = []
        var responder: Responder
        var connections: [any Channel] = []
    }

    /// The port it listens on (127.0.0.1).
    let port: Int
    private let server: any Channel
    private let state: NIOLockedValueBox<State>

    private init(port: Int, server: any Channel, state: NIOLockedValueBox<State>) {
        self.port = port
        self.server = server
        self.state = state
    }

    /// Starts a stub.
    static func start(pki: TestPKI, responder: @escaping Responder) async throws -> KubernetesAPIStub {
        let certificates = try NIOSSLCertificate.fromPEMFile(pki.serverCertificateFile)
        let key = try NIOSSLPrivateKey(file: pki.serverKeyFile, format: .pem)
        let tls = TLSConfiguration.makeServerConfiguration(certificateChain: certificates.map { .certificate($0) }, privateKey: .privateKey(key))
        let context = try NIOSSLContext(configuration: tls)
        let state = NIOLockedValueBox(State(responder: responder))
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                state.withLockedValue { $0.connections.append(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.addHandler(StubHTTPHandler(state: state))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        guard let port = server.localAddress?.port else { throw CohortError(.internal, "the stub has no port") }
        return KubernetesAPIStub(port: port, server: server, state: state)
    }

    /// Replaces the responder.
    func respond(_ responder: @escaping Responder) {
        state.withLockedValue { $0.responder = responder }
    }

    /// Every request so far.
    var requests: [Request] { state.withLockedValue { $0.requests } }

    /// Stops listening and closes every connection.
    func close() async {
        try? await server.close().get()
        for connection in state.withLockedValue({ $0.connections }) { try? await connection.close().get() }
    }

    /// Reads one request per connection and answers it.
    private final class StubHTTPHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private let state: NIOLockedValueBox<State>
        private var received: [UInt8] = []
        private var answered = false

        init(state: NIOLockedValueBox<State>) { self.state = state }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            received += buffer.readBytes(length: buffer.readableBytes) ?? []
            guard !answered, let end = Self.headEnd(received) else { return }
            answered = true
            let head = String(decoding: received[..<end], as: UTF8.self)
            guard let request = Self.parse(head) else {
                context.close(promise: nil)
                return
            }
            let reply = state.withLockedValue { state -> Reply in
                state.requests.append(request)
                return state.responder(request)
            }
            Self.send(reply, on: context.channel)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        static func headEnd(_ bytes: [UInt8]) -> Int? {
            guard bytes.count >= 4 else { return nil }
            for index in 0...(bytes.count - 4) where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
                return index
            }
            return nil
        }

        static func parse(_ head: String) -> Request? {
            let lines = head.components(separatedBy: "\r\n")
            let parts = lines.first?.split(separator: " ") ?? []
            guard parts.count >= 2 else { return nil }
            let target = String(parts[1])
            let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
            let query = target.contains("?") ? String(target[target.index(after: target.firstIndex(of: "?")!)...]) : ""
            var authorization: String?
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                if line[..<colon].lowercased() == "authorization" {
                    authorization = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
            }
            return Request(method: String(parts[0]), path: path, query: query, authorization: authorization)
        }

        static func send(_ reply: Reply, on channel: any Channel) {
            switch reply {
            case .json(let status, let body):
                channel.writeAndFlush(ByteBuffer(string: head(status: status, length: body.utf8.count) + body)).whenComplete { _ in
                    channel.close(promise: nil)
                }
            case .delayed(let delay, let inner):
                let parts = delay.components
                let nanos = parts.seconds * 1_000_000_000 + parts.attoseconds / 1_000_000_000
                channel.eventLoop.scheduleTask(in: .nanoseconds(nanos)) { send(inner, on: channel) }
            case .truncated(let body, let bytes):
                let prefix = String(decoding: Array(body.utf8.prefix(bytes)), as: UTF8.self)
                channel.writeAndFlush(ByteBuffer(string: head(status: 200, length: body.utf8.count) + prefix)).whenComplete { _ in
                    channel.close(promise: nil)
                }
            case .hang:
                break
            }
        }

        static func head(status: Int, length: Int) -> String {
            let reason = [200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 500: "Internal Server Error"][status] ?? "Status"
            return "HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json\r\nContent-Length: \(length)\r\nConnection: close\r\n\r\n"
        }
    }
}
