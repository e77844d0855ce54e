/// Something a discovery plugin found out.
public enum DiscoveryEvent: Sendable, Equatable {
    /// These addresses may host members; the node connects and handshakes to learn who is there.
    /// Each event replaces the previous candidate list of this provider.
    case candidates([Endpoint])
    /// A full member record was seen (for example in a multicast heartbeat).
    case alive(Member)
    /// The provider knows the member is gone (for example a leave datagram).
    case gone(MemberID)
}

/// A discovery plugin: tells the node where other members may be.
///
/// Discovery only proposes; the node verifies every candidate with a handshake, and the failure
/// detector — not discovery — decides that a member is dead. A provider that cannot reach its
/// source (an API, DNS) keeps reporting its last known candidates rather than an empty list.
public protocol DiscoveryProvider: Sendable {
    /// A short name (`static`, `multicast`, `kubernetes`, `dns`).
    var name: String { get }
    /// Runs until cancelled, reporting what it finds through `report`.
    func run(local: Member, report: @escaping @Sendable (DiscoveryEvent) -> Void) async throws
    /// Called once when the node leaves gracefully.
    func leave(local: Member) async
}

extension DiscoveryProvider {
    public func leave(local: Member) async {}
}
