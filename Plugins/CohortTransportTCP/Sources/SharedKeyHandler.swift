import CohortCore
import Crypto
import Foundation
import NIOCore

/// Shared-key mode on one connection: the challenge/response handshake, then AES-256-GCM on
/// every frame. Sits between the `FrameDecoder` and the connection's handler
/// (`InboundHandler`, `OutboundHandler`, `ProbeHandler`), which see plaintext frames and never
/// see a frame of a peer that has not proved it holds a cluster key.
///
/// ```
/// client                                               server
///   ── authHello(scheme 1, key id, client nonce) ───────▶  key id known? else close
///   ◀── authChallenge(key id, server nonce, server proof) ─
///   server proof valid? else close
///   ── authProof(client proof) ─────────────────────────▶  client proof valid? else close
///   ── sealed frames (hello, data, …) ──────────────────▶
///   ◀────────────────────────────── sealed frames ─────────
/// ```
///
/// Proofs are HMAC-SHA256 under the cluster key over a transcript of both nonces and the key
/// id, with a label per role (a proof cannot be reflected). The frame keys are derived with
/// HKDF-SHA256 from the cluster key, salted with both nonces, one per direction; the nonce of
/// the n-th frame in a direction is n (a 96-bit counter), so no (key, nonce) pair repeats,
/// and a frame replayed, dropped or reordered on a connection, or replayed on another
/// connection, fails to open. The 12-byte header is the associated data: kind, codec,
/// guarantee and length cannot be changed. Nothing but the handshake frames is read before
/// the proof; any failure closes the connection without an answer.
///
/// Event-loop confined, like every channel handler.
final class SharedKeyHandler: ChannelDuplexHandler {
    typealias InboundIn = WireFormat.Frame
    typealias InboundOut = WireFormat.Frame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Bytes of an AES-GCM tag.
    static let tagSize = 16
    /// Bytes of each side's random nonce.
    static let nonceSize = 32
    /// The only scheme so far: AES-256-GCM, HKDF-SHA256, HMAC-SHA256.
    static let scheme: UInt8 = 1

    enum Role { case client, server }

    struct Session {
        var sendKey: SymmetricKey
        var receiveKey: SymmetricKey
        var sent: UInt64 = 0
        var received: UInt64 = 0
    }

    enum State {
        case clientStart
        case clientAwaitingChallenge(clientNonce: [UInt8])
        case serverAwaitingHello
        case serverAwaitingProof(key: SymmetricKey, keyID: UInt16, clientNonce: [UInt8], serverNonce: [UInt8])
        case open(Session)
        case closed
    }

    private let keyring: SharedKeyring
    private let role: Role
    private let core: TransportCore
    private var state: State
    /// Writes of the connection's handler before the handshake finished.
    private var pending: [(ByteBuffer, EventLoopPromise<Void>?)] = []

    init(keyring: SharedKeyring, role: Role, core: TransportCore) {
        self.keyring = keyring
        self.role = role
        self.core = core
        self.state = role == .client ? .clientStart : .serverAwaitingHello
    }

    /// Whether the handshake finished (for tests).
    var isOpen: Bool {
        if case .open = state { return true }
        return false
    }

    // MARK: - handshake

    func channelActive(context: ChannelHandlerContext) {
        if role == .client, case .clientStart = state {
            let nonce = Self.randomBytes(Self.nonceSize)
            state = .clientAwaitingChallenge(clientNonce: nonce)
            var body = context.channel.allocator.buffer(capacity: 3 + nonce.count)
            body.writeInteger(Self.scheme)
            body.writeInteger(keyring.current)
            body.writeBytes(nonce)
            context.writeAndFlush(wrapOutboundOut(Self.frame(.authHello, body: body, allocator: context.channel.allocator)), promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        switch state {
        case .open(var session):
            guard let plain = openFrame(frame, with: &session, allocator: context.channel.allocator) else {
                refuse(context: context, "a frame that does not open under this connection's key (forged, altered, replayed or out of order)")
                return
            }
            state = .open(session)
            context.fireChannelRead(wrapInboundOut(plain))
        case .serverAwaitingHello:
            guard frame.kind == .authHello else {
                refuse(context: context, "a \(Self.name(of: frame.kind)) frame before the key handshake; the peer has no cluster key or runs without one")
                return
            }
            guard let scheme = frame.body.readInteger(as: UInt8.self), scheme == Self.scheme,
                  let keyID = frame.body.readInteger(as: UInt16.self),
                  let clientNonce = frame.body.readBytes(length: Self.nonceSize), frame.body.readableBytes == 0
            else {
                refuse(context: context, "a malformed key handshake")
                return
            }
            guard let key = keyring.keys[keyID] else {
                refuse(context: context, "cluster key \(keyID), which this node does not hold; give every member the same key list")
                return
            }
            let serverNonce = Self.randomBytes(Self.nonceSize)
            let proof = Self.proof("server", key: key, keyID: keyID, clientNonce: clientNonce, serverNonce: serverNonce)
            var body = context.channel.allocator.buffer(capacity: 2 + 2 * Self.nonceSize)
            body.writeInteger(keyID)
            body.writeBytes(serverNonce)
            body.writeBytes(proof)
            state = .serverAwaitingProof(key: key, keyID: keyID, clientNonce: clientNonce, serverNonce: serverNonce)
            context.writeAndFlush(wrapOutboundOut(Self.frame(.authChallenge, body: body, allocator: context.channel.allocator)), promise: nil)
        case .serverAwaitingProof(let key, let keyID, let clientNonce, let serverNonce):
            guard frame.kind == .authProof, frame.body.readableBytes == 32,
                  let proof = frame.body.readBytes(length: 32)
            else {
                refuse(context: context, "a \(Self.name(of: frame.kind)) frame instead of the key proof")
                return
            }
            let transcript = Self.transcript("client", keyID: keyID, clientNonce: clientNonce, serverNonce: serverNonce)
            guard HMAC<SHA256>.isValidAuthenticationCode(proof, authenticating: transcript, using: key) else {
                refuse(context: context, "a wrong key proof; the peer does not hold cluster key \(keyID)")
                return
            }
            openSession(context: context, key: key, keyID: keyID, clientNonce: clientNonce, serverNonce: serverNonce)
        case .clientAwaitingChallenge(let clientNonce):
            if frame.kind == .error {
                let text = (try? WireFormat.readString(from: &frame.body)) ?? "unreadable error"
                fail(context: context, "the peer does not speak shared-key mode (it answered: \(text)); give every member the same cluster keys")
                return
            }
            guard frame.kind == .authChallenge,
                  let keyID = frame.body.readInteger(as: UInt16.self),
                  let serverNonce = frame.body.readBytes(length: Self.nonceSize),
                  let proof = frame.body.readBytes(length: 32), frame.body.readableBytes == 0
            else {
                fail(context: context, "the peer answered the key handshake with a \(Self.name(of: frame.kind)) frame")
                return
            }
            guard keyID == keyring.current, let key = keyring.keys[keyID] else {
                fail(context: context, "the peer answered for cluster key \(keyID), not the one this node asked for")
                return
            }
            let transcript = Self.transcript("server", keyID: keyID, clientNonce: clientNonce, serverNonce: serverNonce)
            guard HMAC<SHA256>.isValidAuthenticationCode(proof, authenticating: transcript, using: key) else {
                fail(context: context, "the peer does not hold cluster key \(keyID) (wrong proof)")
                return
            }
            let mine = Self.proof("client", key: key, keyID: keyID, clientNonce: clientNonce, serverNonce: serverNonce)
            var body = context.channel.allocator.buffer(capacity: mine.count)
            body.writeBytes(mine)
            context.write(wrapOutboundOut(Self.frame(.authProof, body: body, allocator: context.channel.allocator)), promise: nil)
            openSession(context: context, key: key, keyID: keyID, clientNonce: clientNonce, serverNonce: serverNonce)
        case .clientStart, .closed:
            // Nothing is read before our own hello, nor after a refusal.
            break
        }
    }

    private func openSession(context: ChannelHandlerContext, key: SymmetricKey, keyID: UInt16, clientNonce: [UInt8], serverNonce: [UInt8]) {
        let salt = clientNonce + serverNonce
        let toServer = Self.derive(key, salt: salt, label: "client to server", keyID: keyID)
        let toClient = Self.derive(key, salt: salt, label: "server to client", keyID: keyID)
        var session = role == .client
            ? Session(sendKey: toServer, receiveKey: toClient)
            : Session(sendKey: toClient, receiveKey: toServer)
        let waiting = pending
        pending.removeAll()
        for (buffer, promise) in waiting {
            guard let sealed = sealFrames(buffer, with: &session, allocator: context.channel.allocator) else {
                promise?.fail(CohortError(.malformedFrame, "a frame to seal is not a whole frame"))
                continue
            }
            context.write(wrapOutboundOut(sealed), promise: promise)
        }
        state = .open(session)
        context.flush()
    }

    // MARK: - writing

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = unwrapOutboundIn(data)
        switch state {
        case .open(var session):
            guard let sealed = sealFrames(buffer, with: &session, allocator: context.channel.allocator) else {
                promise?.fail(CohortError(.malformedFrame, "a frame to seal is not a whole frame"))
                return
            }
            state = .open(session)
            context.write(wrapOutboundOut(sealed), promise: promise)
        case .closed:
            promise?.fail(CohortError(.unauthenticated, "the connection failed its key handshake"))
        default:
            pending.append((buffer, promise))
        }
    }

    func flush(context: ChannelHandlerContext) {
        if case .open = state { context.flush() }
    }

    /// Seals every frame in `buffer` (a handler writes one frame per buffer). Nil when the
    /// buffer does not hold whole frames.
    private func sealFrames(_ buffer: ByteBuffer, with session: inout Session, allocator: ByteBufferAllocator) -> ByteBuffer? {
        var input = buffer
        var output = allocator.buffer(capacity: buffer.readableBytes + Self.tagSize)
        while input.readableBytes > 0 {
            guard input.readableBytes >= WireFormat.headerSize,
                  let length = input.getInteger(at: input.readerIndex + 8, as: UInt32.self),
                  input.readableBytes >= WireFormat.headerSize + Int(length)
            else { return nil }
            let kindByte = input.getInteger(at: input.readerIndex + 5, as: UInt8.self)!
            let codec = input.getInteger(at: input.readerIndex + 6, as: UInt8.self)!
            let guarantee = input.getInteger(at: input.readerIndex + 7, as: UInt8.self)!
            guard let kind = WireFormat.Kind(rawValue: kindByte) else { return nil }
            input.moveReaderIndex(forwardBy: WireFormat.headerSize)
            let body = input.readSlice(length: Int(length))!
            let headerStart = output.writerIndex
            WireFormat.writeHeader(kind: kind, codec: codec, guarantee: guarantee, length: Int(length) + Self.tagSize, into: &output)
            let header = output.getSlice(at: headerStart, length: WireFormat.headerSize)!
            let nonce = Self.nonce(session.sent)
            session.sent &+= 1
            let box: AES.GCM.SealedBox
            do {
                box = try body.withUnsafeReadableBytes { plain in
                    try header.withUnsafeReadableBytes { ad in
                        try AES.GCM.seal(plain, using: session.sendKey, nonce: nonce, authenticating: ad)
                    }
                }
            } catch {
                return nil
            }
            output.writeBytes(box.ciphertext)
            output.writeBytes(box.tag)
        }
        return output
    }

    /// Opens one sealed frame; nil when it does not authenticate.
    private func openFrame(_ frame: WireFormat.Frame, with session: inout Session, allocator: ByteBufferAllocator) -> WireFormat.Frame? {
        let sealedLength = frame.body.readableBytes
        guard sealedLength >= Self.tagSize else { return nil }
        var header = allocator.buffer(capacity: WireFormat.headerSize)
        WireFormat.writeHeader(kind: frame.kind, codec: frame.codec, guarantee: frame.guarantee, length: sealedLength, into: &header)
        let nonce = Self.nonce(session.received)
        let plain: Data
        do {
            plain = try frame.body.withUnsafeReadableBytes { sealed in
                let box = try AES.GCM.SealedBox(
                    nonce: nonce,
                    ciphertext: UnsafeRawBufferPointer(rebasing: sealed[..<(sealedLength - Self.tagSize)]),
                    tag: UnsafeRawBufferPointer(rebasing: sealed[(sealedLength - Self.tagSize)...])
                )
                return try header.withUnsafeReadableBytes { ad in
                    try AES.GCM.open(box, using: session.receiveKey, authenticating: ad)
                }
            }
        } catch {
            return nil
        }
        session.received &+= 1
        // Handshake frames are never sealed: one inside a session is a protocol error.
        switch frame.kind {
        case .authHello, .authChallenge, .authProof: return nil
        default: break
        }
        var body = allocator.buffer(capacity: plain.count)
        body.writeBytes(plain)
        return WireFormat.Frame(kind: frame.kind, codec: frame.codec, guarantee: frame.guarantee, body: body)
    }

    // MARK: - failure

    /// Server side: the peer failed to prove it holds a key. Counted, logged at a limited rate,
    /// closed without an answer (a stranger learns nothing, not even why).
    private func refuse(context: ChannelHandlerContext, _ why: String) {
        state = .closed
        let peer = context.remoteAddress.map { "\($0)" } ?? "unknown peer"
        core.refuse(.unauthenticated, "refused a connection from \(peer): \(why)")
        failPending(why)
        context.close(promise: nil)
    }

    /// Client side: the server failed to prove it holds our key, or does not speak the mode.
    private func fail(context: ChannelHandlerContext, _ why: String) {
        state = .closed
        core.refuse(.unauthenticated, "key handshake with \(context.remoteAddress.map { "\($0)" } ?? "a peer") failed: \(why)")
        failPending(why)
        context.fireErrorCaught(CohortError(.unauthenticated, why))
        context.close(promise: nil)
    }

    private func failPending(_ why: String) {
        let waiting = pending
        pending.removeAll()
        for (_, promise) in waiting { promise?.fail(CohortError(.unauthenticated, why)) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failPending("connection closed during the key handshake")
        context.fireChannelInactive()
    }

    // MARK: - primitives

    static func frame(_ kind: WireFormat.Kind, body: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var frame = allocator.buffer(capacity: WireFormat.headerSize + body.readableBytes)
        WireFormat.writeHeader(kind: kind, length: body.readableBytes, into: &frame)
        frame.writeImmutableBuffer(body)
        return frame
    }

    static func transcript(_ role: String, keyID: UInt16, clientNonce: [UInt8], serverNonce: [UInt8]) -> [UInt8] {
        var bytes = Array("cohort shared-key 1 \(role) proof".utf8)
        bytes.append(UInt8(keyID >> 8))
        bytes.append(UInt8(keyID & 0xFF))
        bytes += clientNonce
        bytes += serverNonce
        return bytes
    }

    static func proof(_ role: String, key: SymmetricKey, keyID: UInt16, clientNonce: [UInt8], serverNonce: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: transcript(role, keyID: keyID, clientNonce: clientNonce, serverNonce: serverNonce), using: key))
    }

    static func derive(_ key: SymmetricKey, salt: [UInt8], label: String, keyID: UInt16) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, salt: salt, info: Array("cohort shared-key 1 \(label) key \(keyID)".utf8), outputByteCount: 32)
    }

    /// The nonce of the n-th frame of a direction: 4 zero bytes and n, big-endian.
    static func nonce(_ counter: UInt64) -> AES.GCM.Nonce {
        var bytes = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { bytes[4 + i] = UInt8(truncatingIfNeeded: counter >> (56 - 8 * UInt64(i))) }
        return try! AES.GCM.Nonce(data: bytes)
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    static func name(of kind: WireFormat.Kind) -> String {
        switch kind {
        case .hello: "hello"
        case .helloReply: "helloReply"
        case .data: "data"
        case .probe: "probe"
        case .authHello: "authHello"
        case .authChallenge: "authChallenge"
        case .authProof: "authProof"
        default: "kind \(kind.rawValue)"
        }
    }
}
