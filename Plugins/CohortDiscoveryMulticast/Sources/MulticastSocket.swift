import CohortCore
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Opening and configuring the UDP sockets of multicast discovery.
enum MulticastSocket {
    /// Opens a datagram socket with the multicast options of `configuration` (TTL, loop,
    /// outgoing interface). Multicast membership is joined by the caller.
    static func open(
        group: any EventLoopGroup,
        bindTo address: SocketAddress,
        configuration: MulticastDiscoveryConfiguration,
        device: NIONetworkDevice?,
        handler: DatagramHandler?
    ) async throws -> any Channel {
        let channel = try await DatagramBootstrap(group: group)
            // Several members on one host share the group port.
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let handler { try channel.pipeline.syncOperations.addHandler(handler) }
                }
            }
            .bind(to: address)
            .get()
        do {
            guard let options = channel as? any SocketOptionProvider else {
                throw CohortError(.internal, "the datagram channel does not expose socket options")
            }
            try await options.setIPMulticastLoop(configuration.loopback ? 1 : 0).get()
            if let ttl = configuration.ttl {
                try await options.setIPMulticastTTL(CUnsignedChar(ttl)).get()
            }
            if let device, let address = device.address, let interface = inAddress(of: address) {
                try await options.setIPMulticastIF(interface).get()
            }
            return channel
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// Joins the group on the device (or where the routing table says, without one) with
    /// `MulticastChannel.joinGroup`. Linux's loopback device has no MULTICAST flag, yet delivers
    /// multicast sent through it; NIO refuses such a device, so for it the same IP_ADD_MEMBERSHIP
    /// request is made directly.
    static func join(_ channel: any Channel, group: SocketAddress, device: NIONetworkDevice?) async throws {
        guard let device, !device.multicastSupported,
              let groupAddress = inAddress(of: group), let interfaceAddress = device.address.flatMap(inAddress(of:))
        else {
            guard let multicast = channel as? any MulticastChannel else {
                throw CohortError(.internal, "the datagram channel does not support multicast")
            }
            try await multicast.joinGroup(group, device: device).get()
            return
        }
        guard let options = channel as? any SocketOptionProvider else {
            throw CohortError(.internal, "the datagram channel does not expose socket options")
        }
        let request = ip_mreq(imr_multiaddr: groupAddress, imr_interface: interfaceAddress)
        try await options.unsafeSetSocketOption(level: .ip, name: .ip_add_membership, value: request).get()
    }

    /// The interface to join and send on: the configured one (name or IPv4 address); else the one
    /// that owns the listen address (so a node on 127.0.0.1 keeps its multicast on loopback);
    /// else nil, which leaves the choice to the routing table.
    ///
    /// - Throws: ``CohortCore/CohortError/Code/badConfiguration`` when a configured interface
    ///   does not exist or has no IPv4 address.
    static func device(_ configured: String?, listenHost: String) throws -> NIONetworkDevice? {
        let devices = try System.enumerateDevices().filter { device in
            if case .v4? = device.address { return true }
            return false
        }
        func ipv4(_ device: NIONetworkDevice) -> String? {
            if case .v4(let v4)? = device.address { return v4.host }
            return nil
        }
        if let configured {
            if let match = devices.first(where: { $0.name == configured || ipv4($0) == configured }) { return match }
            let known = devices.map { "\($0.name) \(ipv4($0) ?? "?")" }.joined(separator: ", ")
            throw CohortError(.badConfiguration, "discovery.multicast setting 'interface': no network interface '\(configured)' with an IPv4 address (this host has: \(known))")
        }
        let host = listenHost == "localhost" ? "127.0.0.1" : listenHost
        guard MulticastDiscoveryConfiguration.ipv4Octets(host) != nil, host != "0.0.0.0" else { return nil }
        return devices.first { ipv4($0) == host }
    }
}

/// Hands every datagram's bytes to a closure (on the event loop).
final class DatagramHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let onDatagram: @Sendable (ByteBuffer) -> Void

    init(onDatagram: @escaping @Sendable (ByteBuffer) -> Void) {
        self.onDatagram = onDatagram
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        onDatagram(unwrapInboundIn(data).data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // NIO closes the socket on fatal errors; the heartbeat loop then re-opens it. Recoverable
        // errors (ECONNREFUSED after a failed send, ENOMEM) leave it open.
        context.fireErrorCaught(error)
    }
}

/// The IPv4 address of a socket address as the C type socket options take (nil for IPv6 and
/// Unix addresses). Made from the text form, so it needs nothing from NIO's C modules.
func inAddress(of address: SocketAddress) -> in_addr? {
    guard case .v4 = address, let text = address.ipAddress else { return nil }
    // Not `in_addr()`: with MemberImportVisibility its zero initializer may be attributed to
    // NIO's C module (CNIOLinux) rather than Glibc, depending on the order modules are loaded,
    // and the build then fails (seen in release builds of the benchmarks).
    var raw: UInt32 = 0
    guard inet_pton(AF_INET, text, &raw) == 1 else { return nil }
    return unsafeBitCast(raw, to: in_addr.self)
}
