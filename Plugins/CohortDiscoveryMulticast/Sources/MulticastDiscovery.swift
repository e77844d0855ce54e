import CohortCore
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Discovery by UDP multicast heartbeats (Tribes' McastService).
///
/// Every ``MulticastDiscoveryConfiguration/frequency`` the local member's record is sent to the
/// group in a ``MulticastDatagram``; every member of the same domain heard is reported as
/// `.alive(member)` (the node then handshakes over TCP), and a member unheard of for
/// ``MulticastDiscoveryConfiguration/dropTime`` — or announcing its leave — as `.gone(id)`, which
/// the failure detector verifies before anyone is removed. A graceful stop sends a leave
/// datagram.
///
/// Malformed datagrams, other domains, incompatible format versions and our own looped-back
/// datagrams are ignored and counted (``counters``). A socket error closes the socket; it is
/// re-opened with exponential backoff while discovery runs.
public final class MulticastDiscovery: DiscoveryProvider, Sendable {
    /// The settings in force.
    public let configuration: MulticastDiscoveryConfiguration
    let logger: Logger
    let group: any EventLoopGroup
    private let metrics = MulticastMetrics()
    private let shared = NIOLockedValueBox(Shared())

    struct Shared {
        var table: MulticastPeerTable?
        var counters = MulticastDiscoveryCounters()
        var channel: (any Channel)?
        /// Whether the current socket has sent a heartbeat (a socket that worked resets the backoff).
        var healthy = false
    }

    /// Creates the provider.
    ///
    /// - Parameters:
    ///   - configuration: group, timing and socket options.
    ///   - group: the event loops for the socket (default: NIO's shared singleton group).
    ///   - logger: where socket problems are logged.
    public init(configuration: MulticastDiscoveryConfiguration = .init(), group: (any EventLoopGroup)? = nil, logger: Logger = Logger(label: "cohort.discovery.multicast")) {
        self.configuration = configuration
        self.group = group ?? MultiThreadedEventLoopGroup.singleton
        self.logger = logger
    }

    public var name: String { "multicast" }

    /// What has been sent, heard and ignored so far.
    public var counters: MulticastDiscoveryCounters { shared.withLockedValue { $0.counters } }

    /// The members currently heard (before any handshake), oldest first.
    public var heardMembers: [Member] { shared.withLockedValue { $0.table?.members ?? [] } }

    public func run(local: Member, report: @escaping @Sendable (DiscoveryEvent) -> Void) async throws {
        shared.withLockedValue { $0.table = MulticastPeerTable(local: local, dropTime: configuration.dropTime) }
        if ["0.0.0.0", "::", ""].contains(local.endpoint.host) {
            logger.warning("discovery.multicast announces \(local.endpoint), which other hosts cannot reach; listen on this host's own address instead")
        }
        var backoff = configuration.recoveryBackoff
        var failures = 0
        var reopening = false
        while !Task.isCancelled {
            do {
                try await runSocket(local: local, report: report, reopening: reopening)
                return
            } catch {
                if Task.isCancelled { return }
                reopening = true
                if shared.withLockedValue({ $0.healthy }) {
                    // The socket worked before it failed: start the backoff over.
                    backoff = configuration.recoveryBackoff
                    failures = 0
                }
                failures += 1
                shared.withLockedValue { $0.counters.socketErrors += 1 }
                metrics.socketErrors.increment()
                let message = "discovery.multicast on \(configuration.address):\(configuration.port): \(error); re-opening in \(backoff)"
                if failures == 1 { logger.error("\(message)") } else { logger.warning("\(message)") }
                do { try await Task.sleep(for: backoff) } catch { return }
                backoff = min(backoff * 2, configuration.recoveryMaxBackoff)
            }
        }
    }

    public func leave(local: Member) async {
        guard let datagram = try? MulticastDatagram.encode(.leave, member: local, signing: configuration.keys.first, time: Self.wallClockMilliseconds()) else { return }
        let configuration = self.configuration
        let group = self.group
        // The heartbeat socket is closed by now: a short-lived one sends the leave (twice, as UDP
        // may lose one), bounded in time so a broken network never holds a shutdown up.
        let sent = await Self.withTimeout(.seconds(1)) {
            let target = try SocketAddress(ipAddress: configuration.address, port: configuration.port)
            let device = try MulticastSocket.device(configuration.interface, listenHost: local.endpoint.host)
            let channel = try await MulticastSocket.open(group: group, bindTo: try SocketAddress(ipAddress: "0.0.0.0", port: 0), configuration: configuration, device: device, handler: nil)
            defer { channel.close(promise: nil) }
            for _ in 0..<2 {
                try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: datagram))
            }
            return 2
        }
        if let sent {
            shared.withLockedValue { $0.counters.sent += sent }
            metrics.sent.increment(by: sent)
        } else {
            logger.warning("discovery.multicast could not send the leave datagram; peers drop \(local.name) after the drop time")
        }
    }

    // MARK: - one socket's lifetime

    private func runSocket(local: Member, report: @escaping @Sendable (DiscoveryEvent) -> Void, reopening: Bool) async throws {
        let target = try SocketAddress(ipAddress: configuration.address, port: configuration.port)
        let device = try MulticastSocket.device(configuration.interface, listenHost: local.endpoint.host)
        let handler = DatagramHandler { [weak self] buffer in self?.received(buffer, report: report) }
        // Bound to the group address (not the wildcard) so that datagrams of other groups on the
        // same port never arrive here.
        let channel = try await MulticastSocket.open(group: group, bindTo: target, configuration: configuration, device: device, handler: handler)
        shared.withLockedValue {
            $0.channel = channel
            $0.healthy = false
            if reopening { $0.counters.reopens += 1 }
        }
        defer { shared.withLockedValue { $0.channel = nil } }
        do {
            try await MulticastSocket.join(channel, group: target, device: device)
            logger.debug("discovery.multicast joined \(target) on \(device?.name ?? "the default interface")")
            try await heartbeats(channel, to: target, local: local, report: report)
        } catch {
            try? await channel.close()
            throw error
        }
    }

    private func heartbeats(_ channel: any Channel, to target: SocketAddress, local: Member, report: @escaping @Sendable (DiscoveryEvent) -> Void) async throws {
        // Signed datagrams carry the time: made again for every heartbeat.
        let signing = configuration.keys.first
        _ = try MulticastDatagram.encode(.alive, member: local, allocator: channel.allocator, signing: signing, time: 0)
        let tick = min(configuration.frequency, .milliseconds(100))
        var nextSend = ContinuousClock.now
        var failuresInARow = 0
        while true {
            if Task.isCancelled {
                try? await channel.close()
                return
            }
            guard channel.isActive else {
                throw CohortError(.connectionFailed, "the multicast socket closed")
            }
            let now = ContinuousClock.now
            if now >= nextSend {
                nextSend = now.advanced(by: configuration.frequency)
                do {
                    let alive = try MulticastDatagram.encode(.alive, member: local, allocator: channel.allocator, signing: signing, time: Self.wallClockMilliseconds())
                    try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: alive))
                    failuresInARow = 0
                    shared.withLockedValue {
                        $0.counters.sent += 1
                        $0.healthy = true
                    }
                    metrics.sent.increment()
                } catch {
                    failuresInARow += 1
                    shared.withLockedValue { $0.counters.sendFailures += 1 }
                    metrics.sendFailed.increment()
                    logger.debug("discovery.multicast send failed: \(error)")
                    // Tribes re-opens after 10 errors in a row; a closed socket re-opens at once.
                    if failuresInARow >= 10 { throw error }
                }
            }
            let gone = shared.withLockedValue { shared -> [DiscoveryEvent] in
                let events = shared.table?.expire(now: now) ?? []
                shared.counters.dropped += events.count
                return events
            }
            if !gone.isEmpty { metrics.dropped.increment(by: gone.count) }
            for event in gone { report(event) }
            do { try await Task.sleep(for: tick) } catch {
                try? await channel.close()
                return
            }
        }
    }

    /// Wall-clock time in ms since 1970 (the time of signed datagrams).
    static func wallClockMilliseconds() -> Int64 {
        Int64(Date().timeIntervalSince1970 * 1000)
    }

    /// Classifies one datagram, counts it, and reports what it means. Runs on the event loop.
    private func received(_ buffer: ByteBuffer, report: @Sendable (DiscoveryEvent) -> Void) {
        let now = ContinuousClock.now
        let decoded: MulticastDatagram.Decoded
        do throws(MulticastDatagram.DecodeError) {
            decoded = try MulticastDatagram.decode(buffer, keys: configuration.keys, now: Self.wallClockMilliseconds(), window: configuration.macWindow)
        } catch {
            shared.withLockedValue {
                $0.counters.received += 1
                switch error {
                case .malformed: $0.counters.malformed += 1
                case .incompatibleVersion: $0.counters.incompatibleVersion += 1
                case .unauthenticated: $0.counters.unauthenticated += 1
                }
            }
            switch error {
            case .malformed: metrics.malformed.increment()
            case .incompatibleVersion: metrics.incompatible.increment()
            case .unauthenticated: metrics.unauthenticated.increment()
            }
            logger.debug("discovery.multicast ignored a datagram: \(error)")
            return
        }
        let (outcome, events) = shared.withLockedValue { shared -> (MulticastPeerTable.Outcome?, [DiscoveryEvent]) in
            shared.counters.received += 1
            guard let result = shared.table?.receive(decoded, now: now) else { return (nil, []) }
            switch result.outcome {
            case .alive: shared.counters.alive += 1
            case .leave: shared.counters.leaves += 1
            case .own: shared.counters.own += 1
            case .foreignDomain: shared.counters.foreignDomain += 1
            case .stale: shared.counters.stale += 1
            }
            return result
        }
        switch outcome {
        case .alive(let new)?:
            metrics.alive.increment()
            if new { logger.debug("discovery.multicast heard \(decoded.member.name) at \(decoded.member.endpoint)") }
        case .leave?: metrics.leave.increment()
        case .own?: metrics.own.increment()
        case .foreignDomain?: metrics.foreignDomain.increment()
        case .stale?: metrics.stale.increment()
        case nil: break
        }
        for event in events { report(event) }
    }

    /// Whether a socket is open and has sent a heartbeat (for tests of recovery).
    var isSocketHealthyForTesting: Bool { shared.withLockedValue { $0.channel != nil && $0.healthy } }

    /// Closes the current socket as an error would, so it is re-opened (for tests of recovery).
    func breakSocketForTesting() {
        let channel = shared.withLockedValue { $0.channel }
        channel?.close(promise: nil)
    }

    static func withTimeout<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async -> T? {
        await withTaskGroup(of: T?.self) { group in
            group.addTask { try? await body() }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}
