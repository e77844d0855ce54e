/// A 16-byte identifier, unique per process incarnation of a member.
///
/// A restarted node gets a new id, so peers can tell a new incarnation from the old one
/// (Tribes' `uniqueId`).
public struct MemberID: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// The high 8 bytes.
    public var high: UInt64
    /// The low 8 bytes.
    public var low: UInt64

    /// Creates an id from its two halves.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// A fresh random id (UUIDv4 bit layout).
    public static func random() -> MemberID {
        var generator = SystemRandomNumberGenerator()
        var high = generator.next() as UInt64
        var low = generator.next() as UInt64
        high = (high & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000
        low = (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        return MemberID(high: high, low: low)
    }

    /// The 16 bytes, big-endian.
    public var bytes: [UInt8] {
        var result = [UInt8]()
        result.reserveCapacity(16)
        for shift in stride(from: 56, through: 0, by: -8) { result.append(UInt8(truncatingIfNeeded: high >> UInt64(shift))) }
        for shift in stride(from: 56, through: 0, by: -8) { result.append(UInt8(truncatingIfNeeded: low >> UInt64(shift))) }
        return result
    }

    public var description: String {
        let hex = bytes.map { b -> String in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
        return String(hex.prefix(8)) + "-" + String(hex.dropFirst(8).prefix(4)) + "-"
            + String(hex.dropFirst(12).prefix(4)) + "-" + String(hex.dropFirst(16).prefix(4)) + "-"
            + String(hex.dropFirst(20))
    }

    public static func < (lhs: MemberID, rhs: MemberID) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}

/// A network address a member can be reached at.
public struct Endpoint: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Host name or IP address literal.
    public var host: String
    /// TCP port.
    public var port: Int

    /// Creates an endpoint.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` or `[v6]:port`.
    ///
    /// - Throws: ``CohortError`` with code ``CohortError/Code/badConfiguration`` when the text is
    ///   not an address.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingWhitespace()
        func fail() -> CohortError {
            CohortError(
                .badConfiguration,
                "'\(text)' is not an address: write HOST:PORT (for example 127.0.0.1:4001 or [::1]:4001)"
            )
        }
        let hostPart: Substring
        let portPart: Substring
        if trimmed.hasPrefix("[") {
            guard let close = trimmed.firstIndex(of: "]") else { throw fail() }
            hostPart = trimmed[trimmed.index(after: trimmed.startIndex)..<close]
            let rest = trimmed[trimmed.index(after: close)...]
            guard rest.hasPrefix(":") else { throw fail() }
            portPart = rest.dropFirst()
        } else {
            guard let colon = trimmed.lastIndex(of: ":") else { throw fail() }
            hostPart = trimmed[..<colon]
            portPart = trimmed[trimmed.index(after: colon)...]
            if hostPart.contains(":") { throw fail() }
        }
        guard !hostPart.isEmpty, let port = Int(portPart), (0...65535).contains(port) else { throw fail() }
        self.init(host: String(hostPart), port: port)
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

extension String {
    package func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}

/// One node of a cluster, as the others see it.
///
/// Equality and hashing use ``id`` only: two incarnations of a node at the same address are
/// different members.
public struct Member: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Unique per incarnation.
    public var id: MemberID
    /// Human-readable name, for logs and tools.
    public var name: String
    /// Where the member's transport listens.
    public var endpoint: Endpoint
    /// Cluster domain; members of other domains are invisible to each other.
    public var domain: String
    /// Small application metadata (route, zone, version…). Keep it under a few hundred bytes.
    public var metadata: [String: String]
    /// When this incarnation started, in milliseconds since 1970. Older members sort first.
    public var startTime: Int64

    /// Creates a member.
    public init(
        id: MemberID = .random(),
        name: String,
        endpoint: Endpoint,
        domain: String = "default",
        metadata: [String: String] = [:],
        startTime: Int64
    ) {
        self.id = id
        self.name = name
        self.endpoint = endpoint
        self.domain = domain
        self.metadata = metadata
        self.startTime = startTime
    }

    /// The host the member listens on.
    public var host: String { endpoint.host }
    /// The port the member listens on.
    public var port: Int { endpoint.port }

    public static func == (lhs: Member, rhs: Member) -> Bool { lhs.id == rhs.id }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }

    public var description: String { "\(name)@\(endpoint)" }
}
