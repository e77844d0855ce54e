// Encoding and decoding one 1 KiB message with the built-in codecs, the way the channel does it:
// through `any MessageCodec`, encoding into a reused buffer, decoding through the message
// registry (the receive path's allow-list lookup, which returns `any ClusterMessage`).
//
// And a session delta of 1 KiB (one attribute set, the access recorded), encoded and decoded
// again: what every replicated request costs the sender and each receiver in the codec. Its
// malloc counts are held by thresholds (Thresholds/, `scripts/bench --check`).
import Benchmark
import Cohort
import CohortBenchSupport
import CohortCodecBinary
import CohortCodecJSON
@_spi(Benchmarks) import CohortSessions
import NIOCore

let benchmarks: @Sendable () -> Void = {
    // 1,000 operations per measured iteration; the text output shows per-operation values (`*`).
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .mallocBytesCount],
        warmupIterations: 3,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 2_000
    )
    let message = BenchMessage.sample()
    let registry: MessageRegistry = {
        var registry = MessageRegistry()
        do {
            try registry.register(BenchMessage.self)
        } catch {
            fatalError("cannot register \(BenchMessage.self): \(error)")
        }
        return registry
    }()
    let codecs: [any MessageCodec] = [BinaryCodec(), JSONCodec()]

    for codec in codecs {
        Benchmark("Serialization encode 1 KiB \(codec.name)", configuration: configuration) { benchmark in
            var buffer = ByteBufferAllocator().buffer(capacity: 4096)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                buffer.clear()
                try codec.encode(message, into: &buffer)
                blackHole(buffer.readableBytes)
            }
            benchmark.stopMeasurement()
        }

        Benchmark("Serialization decode 1 KiB \(codec.name)", configuration: configuration) { benchmark in
            let encoded = try codec.encode(message)
            var check = encoded
            guard let decoded = try registry.decode(BenchMessage.messageType, codec: codec, from: &check) as? BenchMessage,
                  decoded == message
            else {
                benchmark.error("\(codec.name) did not round-trip the message")
                return
            }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                var input = encoded  // shares storage; decoding only moves this copy's reader index
                blackHole(try registry.decode(BenchMessage.messageType, codec: codec, from: &input))
            }
            benchmark.stopMeasurement()
        }
    }
    // The malloc count per encode + decode is exact and repeatable; it is counted per 1,000
    // operations (Thresholds/), so one more allocation per operation (+1,000) fails
    // `scripts/bench --check`, and the tolerance of 100 only absorbs a stray one per batch.
    let heldConfiguration = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .mallocBytesCount],
        warmupIterations: 3,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 2_000,
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 100])]
    )
    let delta = SessionDeltaSample(attributeBytes: 1024)
    for codec in codecs {
        Benchmark("Serialization session delta 1 KiB encode+decode \(codec.name)", configuration: heldConfiguration) { benchmark in
            var buffer = ByteBufferAllocator().buffer(capacity: 4096)
            try delta.encode(with: codec, into: &buffer)
            guard try SessionDeltaSample.decode(with: codec, from: &buffer) == delta else {
                benchmark.error("\(codec.name) did not round-trip the session delta")
                return
            }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                buffer.clear()
                try delta.encode(with: codec, into: &buffer)
                blackHole(try SessionDeltaSample.decode(with: codec, from: &buffer))
            }
            benchmark.stopMeasurement()
        }
    }
}
