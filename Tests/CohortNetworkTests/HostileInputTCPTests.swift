import Cohort
import CohortCodecBinary
import CohortSessions
import CohortTestKit
import Foundation
import NIOCore
import NIOPosix
import Testing

/// The crashes of issue 15, sent as a stranger would: the documented wire format over a real
/// TCP connection to a node of a two-node cluster running the delta session manager. Each test
/// checks that the node keeps running, still serves its member (a session created on it is
/// read on the other node), and counted the refused input.
@Suite("Hostile input over TCP", .timeLimit(.minutes(3)))
struct HostileInputTCPTests {
    /// Two nodes with a delta session manager each (store `sessions/app`), and a fake member
    /// admitted to the first node.
    final class Setup: Sendable {
        let cluster: TestCluster
        let managers: [SessionManager]
        let tasks: [Task<Void, any Error>]
        let clock: ManualClock
        let fake: FakeMember
        let listener: any Channel

        init(cluster: TestCluster, managers: [SessionManager], tasks: [Task<Void, any Error>], clock: ManualClock, fake: FakeMember, listener: any Channel) {
            self.cluster = cluster
            self.managers = managers
            self.tasks = tasks
            self.clock = clock
            self.fake = fake
            self.listener = listener
        }

        static let store = "sessions/app"

        static func with(_ body: (Setup) async throws -> Void) async throws {
            try await TestCluster.with(nodes: 2, transport: .tcp) { cluster in
                let clock = ManualClock()
                var managers: [SessionManager] = []
                var tasks: [Task<Void, any Error>] = []
                for node in cluster.nodes {
                    var settings = SessionManagerConfiguration(name: "app")
                    settings.clock = clock
                    settings.settleTime = .zero
                    settings.expiryCheckInterval = .seconds(1)
                    settings.sendTimeout = .seconds(5)
                    let manager = try DeltaSessionManager(channel: node, configuration: settings)
                    managers.append(manager)
                    tasks.append(Task { try await manager.run() })
                }
                for manager in managers { try await manager.waitUntilReady() }
                // A stranger that speaks the wire format. It also listens, answering hellos, probes
                // and data like a member, so that the node keeps it in its view (and keeps the
                // connection the forged messages come on).
                let id = MemberID.random()
                let listener = try await FakeListener.start(id: id)
                let stranger = Member(id: id, name: "stranger", endpoint: Endpoint(host: "127.0.0.1", port: listener.localAddress!.port!), startTime: 1)
                let fake = try await FakeMember.connect(to: cluster[0].localMember.endpoint, as: stranger)
                let setup = Setup(cluster: cluster, managers: managers, tasks: tasks, clock: clock, fake: fake, listener: listener)
                do {
                    try await body(setup)
                } catch {
                    await setup.stop()
                    throw error
                }
                await setup.stop()
            }
        }

        func stop() async {
            await fake.close()
            try? await listener.close()
            for manager in managers { manager.shutdown() }
            for task in tasks { _ = try? await task.value }
        }

        /// The first node still runs and replicates to the second.
        func expectServing(_ comment: Comment) async throws {
            let session = try await managers[0].createSession { try $0.setAttribute("n", 42) }
            let copy = try await managers[1].session(session.id)
            #expect(try copy?.attribute("n", as: Int.self) == 42, comment)
            #expect(cluster[0].view.contains(cluster[1].localMember.id), comment)
        }
    }

    /// Sends a `ReplicaUpdate` (type 100: store, key, body as one flat array) whose body is
    /// `body` encoded by the binary codec.
    static func forgedUpdate(key: String, body: some Encodable) throws -> ByteBuffer {
        try BinaryCodec().encode(Wire(values: [.text(Setup.store), .text(key), .bytes(Array(BinaryCodec().encode(body).readableBytesView))]))
    }

    // MARK: - the crashes of the issue

    /// "One forged ReplicaUpdate whose session delta announces 2^50 attributes killed a default
    /// node (failed to allocate 90353467524120640 bytes)."
    @Test func replicaUpdateAnnouncingTwoToTheFiftyAttributes() async throws {
        try await Setup.with { setup in
            let delta = Wire.delta(id: "victim", counter: 1, fields: 1, [.i64(1_700_000_000_000), .int(1 << 50), .text("a"), .bytes([1])])
            let answer = try await setup.fake.sendRaw(type: 100, payload: Self.forgedUpdate(key: "victim", body: delta))
            #expect(answer.isHandlerFailure(mentioning: "attributes"), "\(answer)")
            #expect(setup.managers[0].statistics.codecFailures == 1)
            try await setup.expectServing("after the 2^50-attribute update")
        }
    }

    /// "`seen + 1` on a remote stamp of UInt64.max": the stamp is refused on decode, and a
    /// stamp at the highest allowed counter leaves local writes working (they saturate).
    @Test func stampOfUInt64Max() async throws {
        try await Setup.with { setup in
            let id = try await setup.managers[0].createSession { try $0.setAttribute("n", 1) }.id
            let forged = Wire.delta(id: id, counter: .max, fields: 2, [.i64(1_700_000_000_000)])
            let refused = try await setup.fake.sendRaw(type: 100, payload: Self.forgedUpdate(key: id, body: forged))
            #expect(refused.isHandlerFailure(mentioning: "stamp"), "\(refused)")
            #expect(setup.managers[0].statistics.codecFailures == 1)
            // The highest counter a stamp may have is taken; the next local write saturates.
            let top = Wire.delta(id: id, counter: UInt64(Int64.max), fields: 2, [.i64(1_700_000_000_000)])
            #expect(try await setup.fake.sendRaw(type: 100, payload: Self.forgedUpdate(key: id, body: top)) == .processed)
            try await setup.managers[0].withSession(id) { try $0.setAttribute("n", 2) }
            #expect(try await setup.managers[0].session(id)?.version == UInt64(Int64.max))
            try await setup.expectServing("after a stamp of UInt64.max")
        }
    }

    /// "`lastAccessedTime + maxInactive` overflowing Int64 (SessionRecord.deadline, reached by
    /// the sweep every second)": an implausible time is refused, a plausible one with the
    /// largest idle limit is taken and swept without overflow.
    @Test func expiryOverflow() async throws {
        try await Setup.with { setup in
            // creation + access (bits 0, 1) near Int64.max and an idle limit (bit 2): refused.
            let wild = Wire.delta(id: "wild", counter: 1, fields: 7, [.i64(.max - 10), .i64(.max - 10), .i64(1_000)])
            let refused = try await setup.fake.sendRaw(type: 100, payload: Self.forgedUpdate(key: "wild", body: wild))
            #expect(refused.isHandlerFailure(mentioning: "time"), "\(refused)")
            #expect(setup.managers[0].statistics.codecFailures == 1)
            // The latest time a node accepts, with an idle limit of Int64.max: taken; its
            // deadline saturates.
            let edge: Int64 = 1 << 53
            let late = Wire.delta(id: "late", counter: 1, fields: 7, [.i64(edge), .i64(edge), .i64(.max)])
            #expect(try await setup.fake.sendRaw(type: 100, payload: Self.forgedUpdate(key: "late", body: late)) == .processed)
            #expect(try await setup.managers[0].session("late") != nil)
            // Let the sweep run over it: a session that idles out in 2 s proves it ran.
            var short = setup.managers[0].newSession()
            short.maxInactiveInterval = .seconds(2)
            _ = try await setup.managers[0].commit(short)
            setup.clock.advance(by: .seconds(3))
            let swept = await eventually(timeout: .seconds(10)) { setup.managers[0].statistics.expired >= 1 }
            #expect(swept, "the sweep did not run")
            #expect(try await setup.managers[0].session("late") != nil)
            try await setup.expectServing("after an expiry overflow")
        }
    }

    /// "The binary decoder reserves capacity from counts in the input": counts of 2^32 − 1
    /// elements in a message, and in the body a replicator decodes, are refused.
    @Test func oversizeCountsInTheBinaryCodec() async throws {
        try await Setup.with { setup in
            // The message itself: an array (tag 0x09) and a map (tag 0x0A) announcing 2^32 − 1 entries.
            for tag: UInt8 in [0x09, 0x0A] {
                let answer = try await setup.fake.sendRaw(type: 100, payload: ByteBuffer(bytes: [tag, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x01, 0x61]))
                #expect(answer.isRejected, "\(answer)")
            }
            // The body of a valid ReplicaUpdate: the same counts.
            for tag: UInt8 in [0x09, 0x0A] {
                let payload = try BinaryCodec().encode(Wire(values: [.text(Setup.store), .text("k"), .bytes([tag, 0xFF, 0xFF, 0xFF, 0xFF, 0x04, 0x01])]))
                let answer = try await setup.fake.sendRaw(type: 100, payload: payload)
                #expect(answer.isHandlerFailure(mentioning: "count"), "\(answer)")
            }
            #expect(setup.managers[0].statistics.codecFailures == 2)
            try await setup.expectServing("after oversize counts")
        }
    }

    // MARK: - unsolicited answers

    /// A transfer batch nobody asked for is refused, not merged, and counted.
    @Test func unsolicitedTransferBatchIsRefused() async throws {
        try await Setup.with { setup in
            // An empty map of session records: the batch is well formed, just not asked for.
            let body = try BinaryCodec().encode([String: Int]())
            let batch = try BinaryCodec().encode(TransferBatch(s: Setup.store, r: 1, q: 0, b: body, l: true, y: true))
            let answer = try await setup.fake.sendRaw(type: 102, payload: batch)
            #expect(answer.isHandlerFailure(mentioning: "did not ask"), "\(answer)")
            #expect(setup.managers[0].statistics.refusedMessages == 1)
            try await setup.expectServing("after an unsolicited batch")
        }
    }

    /// `ReplicaTransferBatch` as the documented map (keys s, r, q, b, l, y).
    struct TransferBatch: Encodable {
        var s: String
        var r: UInt64
        var q: UInt32
        var b: ByteBuffer
        var l: Bool
        var y: Bool
    }
}

/// The listening side of the stranger: answers `hello` and `probe` with its member record and
/// every data frame with `processed`, so the node under attack treats it as a healthy member.
enum FakeListener {
    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let template: Member
        var buffer = ByteBuffer()

        init(template: Member) { self.template = template }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            buffer.writeBuffer(&bytes)
            let port = context.channel.localAddress?.port ?? 0
            var me = template
            me.endpoint = Endpoint(host: "127.0.0.1", port: port)
            while let frame = try? WireFormat.parse(from: &buffer, maxFrameSize: 1 << 24) {
                var reply = ByteBuffer()
                switch frame.kind {
                case .hello, .probe:
                    var record = ByteBuffer()
                    WireFormat.writeMember(me, into: &record)
                    WireFormat.writeHeader(kind: .helloReply, length: record.readableBytes, into: &reply)
                    reply.writeBuffer(&record)
                case .data:
                    guard let seq = frame.body.getInteger(at: frame.body.readerIndex, as: UInt64.self) else { continue }
                    WireFormat.writeHeader(kind: .processed, length: 8, into: &reply)
                    reply.writeInteger(seq)
                default:
                    continue
                }
                context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
            }
        }
    }

    static func start(id: MemberID) async throws -> any Channel {
        try await start(as: Member(id: id, name: "stranger", endpoint: Endpoint(host: "127.0.0.1", port: 0), startTime: 1))
    }

    /// Listens on a free loopback port and answers as `template` (its endpoint replaced by the
    /// port listened on).
    static func start(as template: Member) async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Handler(template: template)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }
}

/// A value written as one flat unkeyed container, element by element: how a peer forges a
/// session delta (a count that lies, a stamp or a time at the edge).
struct Wire: Encodable {
    enum Value {
        case u8(UInt8), u64(UInt64), i64(Int64), int(Int), text(String), bytes([UInt8])
    }

    var values: [Value]

    func encode(to encoder: any Encoder) throws {
        var c = encoder.unkeyedContainer()
        for value in values {
            switch value {
            case .u8(let v): try c.encode(v)
            case .u64(let v): try c.encode(v)
            case .i64(let v): try c.encode(v)
            case .int(let v): try c.encode(v)
            case .text(let v): try c.encode(v)
            case .bytes(let v): try c.encode(ByteBuffer(bytes: v))
            }
        }
    }

    /// A session delta (format 1, docs/sessions.md): id, stamp counter and origin, field bits,
    /// then the fields and attributes as given.
    static func delta(id: String, counter: UInt64, origin: UInt64 = 7, fields: UInt8, _ rest: [Value]) -> Wire {
        Wire(values: [.u8(1), .text(id), .u64(counter), .u64(origin), .u8(fields)] + rest)
    }
}

extension FakeMember.Answer {
    /// The receiver's handler threw (reason 1), with `text` in its message.
    func isHandlerFailure(mentioning text: String) -> Bool {
        if case .failed(1, let message) = self { return message.contains(text) }
        return false
    }

    /// The receiver refused the message before any handler (reason 2).
    var isRejected: Bool {
        if case .failed(2, _) = self { return true }
        return false
    }
}

extension FakeMember {
    /// Sends a data frame with a raw payload, waiting for processing, and returns the answer.
    func sendRaw(type: UInt32, payload: ByteBuffer) async throws -> Answer {
        let seq = UInt64.random(in: 1_000_000...UInt64(Int64.max))
        var body = ByteBuffer()
        body.writeInteger(seq)
        body.writeInteger(type)
        body.writeInteger(UInt32(0))
        var payload = payload
        body.writeBuffer(&payload)
        var frame = ByteBuffer()
        WireFormat.writeHeader(kind: .data, codec: CodecID.binary.rawValue, guarantee: DeliveryGuarantee.processed.rawValue, length: body.readableBytes, into: &frame)
        frame.writeBuffer(&body)
        try await channel.writeAndFlush(frame)
        var answer: Answer?
        _ = await eventually(timeout: .seconds(10)) {
            for var frame in self.frames where frame.kind == .processed || frame.kind == .failed {
                guard frame.body.readInteger(as: UInt64.self) == seq else { continue }
                if frame.kind == .processed {
                    answer = .processed
                } else {
                    let reason = frame.body.readInteger(as: UInt8.self) ?? 0
                    answer = .failed(reason: reason, text: (try? WireFormat.readString(from: &frame.body)) ?? "")
                }
                return true
            }
            return false
        }
        guard let answer else { throw CohortError(.timeout, "no answer to data frame \(seq)") }
        return answer
    }
}
