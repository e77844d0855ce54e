/// A shared cluster key: 32 secret bytes and a small id that names the key on the wire.
///
/// Every member of a cluster in shared-key mode holds the same list of keys. A node opens its
/// connections with the first key of its list and accepts connections made with any key of the
/// list, so a key is rotated in three rolling steps: add the new key at the end of every node's
/// list, move it to the front on every node, then remove the old one (see docs/security.md).
///
/// The text form is `ID:HEX` — a decimal id (1–65535) and 64 hexadecimal digits (`openssl rand
/// -hex 32`, or `cohort key`); several keys are separated by commas.
public struct ClusterKey: Sendable, Equatable, CustomStringConvertible {
    /// The id the key is named by on the wire (never 0).
    public let id: UInt16
    /// The 32 secret bytes.
    public let secret: [UInt8]

    /// The length of a key's secret, in bytes.
    public static let secretLength = 32

    /// Creates a key from its id and 32 secret bytes.
    ///
    /// - Throws: ``CohortError/Code/badConfiguration`` when the id is 0 or the secret is not 32 bytes.
    public init(id: UInt16, secret: [UInt8]) throws {
        guard id != 0 else { throw CohortError(.badConfiguration, "a cluster key id must be between 1 and 65535") }
        guard secret.count == Self.secretLength else {
            throw CohortError(.badConfiguration, "a cluster key must be \(Self.secretLength) bytes (64 hexadecimal digits), got \(secret.count) bytes; make one with `cohort key` or `openssl rand -hex 32`")
        }
        self.id = id
        self.secret = secret
    }

    /// Parses one key in the form `ID:HEX`.
    ///
    /// - Throws: ``CohortError/Code/badConfiguration`` with what is wrong (never the secret itself).
    public init(parsing text: some StringProtocol) throws {
        let trimmed = text.trimmingWhitespace
        let parts = trimmed.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, let id = UInt16(parts[0]) else {
            throw CohortError(.badConfiguration, "a cluster key must be written ID:HEX (for example 1:<64 hexadecimal digits>); make one with `cohort key`")
        }
        let hex = Array(parts[1].utf8)
        guard hex.count == Self.secretLength * 2 else {
            throw CohortError(.badConfiguration, "cluster key \(id) must have 64 hexadecimal digits after the id, got \(hex.count) characters; make one with `cohort key` or `openssl rand -hex 32`")
        }
        var secret: [UInt8] = []
        secret.reserveCapacity(Self.secretLength)
        var index = 0
        while index < hex.count {
            guard let high = Self.nibble(hex[index]), let low = Self.nibble(hex[index + 1]) else {
                throw CohortError(.badConfiguration, "cluster key \(id) holds a character that is not a hexadecimal digit")
            }
            secret.append(high << 4 | low)
            index += 2
        }
        try self.init(id: id, secret: secret)
    }

    /// Parses a comma-separated list of keys; the first is the one a node sends with.
    ///
    /// - Throws: ``CohortError/Code/badConfiguration`` for a malformed key or an id used twice.
    public static func parseList(_ text: some StringProtocol) throws -> [ClusterKey] {
        let keys = try text.split(separator: ",").filter { !$0.trimmingWhitespace.isEmpty }.map { try ClusterKey(parsing: $0) }
        try checkUnique(keys)
        return keys
    }

    /// Refuses a list that names one id twice.
    public static func checkUnique(_ keys: [ClusterKey]) throws {
        var seen = Set<UInt16>()
        for key in keys where !seen.insert(key.id).inserted {
            throw CohortError(.badConfiguration, "cluster key id \(key.id) is listed twice; give each key its own id")
        }
    }

    /// A new random key (from the system's cryptographically secure generator).
    public static func generate(id: UInt16 = 1) -> ClusterKey {
        var generator = SystemRandomNumberGenerator()
        let secret = (0..<secretLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        // A valid id and a 32-byte secret: cannot fail.
        return try! ClusterKey(id: max(id, 1), secret: secret)
    }

    /// The text form `ID:HEX`, for configuration files and environment variables. It holds the
    /// secret: never log it.
    public var text: String {
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(secret.count * 2)
        for byte in secret {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0F)])
        }
        return "\(id):" + String(decoding: hex, as: UTF8.self)
    }

    /// The id only: a key's description never shows its secret.
    public var description: String { "cluster key \(id)" }

    /// The text form of a list of keys.
    public static func text(of keys: [ClusterKey]) -> String { keys.map(\.text).joined(separator: ",") }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

extension StringProtocol {
    fileprivate var trimmingWhitespace: Substring {
        let s = Substring(self)
        guard let start = s.firstIndex(where: { !$0.isWhitespace }) else { return "" }
        let end = s.lastIndex(where: { !$0.isWhitespace })!
        return s[start...end]
    }
}
