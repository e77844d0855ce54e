// The cost per message of each interceptor stage (issue 16), at 1 KiB and 64 KiB: one message
// through the stage outbound, and what it passed on back through a second instance of the stage
// inbound (the receiver's half), between ends that only capture the message. No network, no
// codec: what is measured is the stage itself. `none` is the same round trip through an empty
// chain. Payloads are text-like (a counter in repeated words, about 5:1 under deflate level 1);
// `fragmentation` uses 16 KiB fragments so that 64 KiB makes four fragments (1 KiB passes it by).
import Benchmark
import Cohort
import NIOConcurrencyHelpers
import NIOCore

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal, .mallocBytesCount]
    for size in [1024, 64 * 1024] {
        for stage in StageBench.Kind.allCases {
            let bench = StageBench(kind: stage, size: size)
            Benchmark(
                "Interceptor \(stage.rawValue) \(size / 1024) KiB",
                configuration: .init(metrics: metrics, warmupIterations: 3, scalingFactor: .kilo, maxDuration: .seconds(3), maxIterations: 1_000)
            ) { benchmark in
                let before = bench.deliveredCount
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    await bench.roundTrip()
                }
                benchmark.stopMeasurement()
                if bench.deliveredCount - before != benchmark.scaledIterations.count {
                    benchmark.error("\(stage.rawValue) did not deliver every message (\(bench.deliveredCount - before) of \(benchmark.scaledIterations.count))")
                }
            }
        }
    }
}

/// One stage between capturing ends, sending side and receiving side.
final class StageBench: Sendable {
    enum Kind: String, CaseIterable, Sendable {
        case none
        case throughput
        case compression
        case order
        case fragmentation
    }

    let sender = Member(name: "a", endpoint: Endpoint(host: "127.0.0.1", port: 1), startTime: 1)
    let receiver = Member(name: "b", endpoint: Endpoint(host: "127.0.0.1", port: 2), startTime: 2)
    let message: OutboundMessage
    let outbound: InterceptorChain
    let inbound: InterceptorChain
    private let passed = NIOLockedValueBox<[OutboundMessage]>([])
    private let delivered = NIOLockedValueBox(0)

    var deliveredCount: Int { delivered.withLockedValue { $0 } }

    init(kind: Kind, size: Int) {
        var text = ByteBuffer()
        var i = 0
        while text.readableBytes < size {
            text.writeString("session attribute \(i) of the cart; ")
            i += 1
        }
        text.moveWriterIndex(to: size)
        var options = SendOptions.processed
        options.ordered = kind == .order
        message = OutboundMessage(type: MessageType(3001), codec: CodecID(rawValue: 1), payload: text, options: options)
        func stage(local: MemberID) -> [any Interceptor] {
            switch kind {
            case .none: return []
            case .throughput: return [Throughput()]
            case .compression: return [Compression()]
            case .order: return [Order(local: local)]
            case .fragmentation: return [Fragmentation(settings: .init(fragmentSize: 16 * 1024))]
            }
        }
        let passed = self.passed
        let delivered = self.delivered
        outbound = InterceptorChain(stages: stage(local: sender.id), ends: ChainEnds(
            transmit: { message, members in
                passed.withLockedValue { $0.append(message) }
                return SendReport(outcomes: members.map { ($0.id, .delivered) })
            },
            dispatch: { _ in .processed },
            signal: { _ in }
        ))
        inbound = InterceptorChain(stages: stage(local: receiver.id), ends: ChainEnds(
            transmit: { _, members in SendReport(outcomes: members.map { ($0.id, .delivered) }) },
            dispatch: { _ in
                delivered.withLockedValue { $0 += 1 }
                return .processed
            },
            signal: { _ in }
        ))
    }

    /// One message out through the stage, and what it passed on in through the receiver's.
    func roundTrip() async {
        blackHole(await outbound.send(message, to: [receiver]))
        let frames = passed.withLockedValue { passed in
            defer { passed.removeAll(keepingCapacity: true) }
            return passed
        }
        for frame in frames {
            let arrived = InboundMessage(sender: sender, type: frame.type, codec: frame.codec, payload: frame.payload, guarantee: frame.options.guarantee, flags: frame.options.flags)
            blackHole(await inbound.receive(arrived))
        }
    }
}
