import CohortCore
import Crypto
import NIOSSL

/// How the TCP transport protects its connections.
///
/// - ``plaintext``: frames in clear, anyone who reaches the port is believed. Only for loopback
///   or a network where every host is trusted; `ClusterConfiguration` refuses it on a listener
///   reachable beyond loopback unless told `insecure`.
/// - ``mutualTLS(_:)``: TLS with a certificate on both sides, each member's name bound to its
///   certificate.
/// - ``sharedKey(_:)``: every connection starts with a challenge/response in both directions
///   that proves possession of a cluster key before any frame is read; every later frame is
///   sealed with AES-256-GCM under keys derived for that connection and direction (HKDF-SHA256
///   over both sides' random nonces), with a counter nonce, and the frame header as associated
///   data. See docs/security.md and docs/wire-format.md §6.
public struct TransportSecurity: Sendable {
    enum Mode: Sendable {
        case plaintext
        case sharedKey(SharedKeyring)
        case mutualTLS(TLSMaterial)
    }

    let mode: Mode

    /// Frames in clear; no peer proves anything.
    public static let plaintext = TransportSecurity(mode: .plaintext)

    /// Shared-key mode with a list of keys: connections are opened with the first, and accepted
    /// with any.
    ///
    /// - Throws: ``CohortError/Code/badConfiguration`` for an empty list or an id used twice.
    public static func sharedKey(_ keys: [ClusterKey]) throws -> TransportSecurity {
        TransportSecurity(mode: .sharedKey(try SharedKeyring(keys)))
    }

    /// Mutual TLS: both ends present a certificate signed by the cluster's CA, and a member's
    /// `hello` (or `helloReply`) is accepted only when the certificate names the member (its
    /// member name as a `DNS:` subject alternative name). The files are read again when they
    /// change on disk; new connections use the new files.
    ///
    /// - Throws: ``CohortError/Code/badConfiguration`` when the files cannot be read or used.
    public static func mutualTLS(_ files: TLSFiles) throws -> TransportSecurity {
        let material = TLSMaterial(files: files)
        _ = try material.contexts()
        return TransportSecurity(mode: .mutualTLS(material))
    }

    /// Whether peers must prove they hold the cluster's credentials.
    public var isAuthenticated: Bool {
        if case .plaintext = mode { return false }
        return true
    }

    /// Bytes a sealed frame adds to its body (the AES-GCM tag).
    var bodyOverhead: Int {
        if case .sharedKey = mode { return SharedKeyHandler.tagSize }
        return 0
    }
}

/// The keys of shared-key mode, ready for use.
struct SharedKeyring: Sendable {
    /// The key this node opens connections with.
    let current: UInt16
    let keys: [UInt16: SymmetricKey]

    init(_ list: [ClusterKey]) throws {
        guard let first = list.first else {
            throw CohortError(.badConfiguration, "shared-key mode needs at least one cluster key")
        }
        try ClusterKey.checkUnique(list)
        current = first.id
        var keys: [UInt16: SymmetricKey] = [:]
        for key in list { keys[key.id] = SymmetricKey(data: key.secret) }
        self.keys = keys
    }
}
