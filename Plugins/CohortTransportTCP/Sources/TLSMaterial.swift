import CohortCore
import Foundation
import NIOConcurrencyHelpers
import NIOSSL

/// The files of mutual TLS: this node's certificate chain and private key, and the CA that signs
/// every member's certificate.
public struct TLSFiles: Sendable, Equatable {
    /// PEM certificate chain of this node; its subject alternative names include the node's
    /// member name (`DNS:<name>`).
    public var certificate: String
    /// PEM private key of the certificate.
    public var privateKey: String
    /// PEM certificate(s) of the cluster's CA: only certificates it signed are accepted.
    public var trustRoots: String

    public init(certificate: String, privateKey: String, trustRoots: String) {
        self.certificate = certificate
        self.privateKey = privateKey
        self.trustRoots = trustRoots
    }
}

/// The TLS contexts made from ``TLSFiles``, made again when a file changes on disk (a
/// Kubernetes Secret rotation swaps the files behind a symbolic link): each new connection asks
/// for the contexts, and gets new ones once the files changed. Open connections keep theirs.
final class TLSMaterial: Sendable {
    struct Contexts: @unchecked Sendable {
        var server: NIOSSLContext
        var client: NIOSSLContext
    }

    private struct Loaded: @unchecked Sendable {
        var stamps: [FileStamp]
        var contexts: Contexts
    }

    /// What identifies one version of a file: inode, size and modification time.
    struct FileStamp: Equatable {
        var inode: UInt64
        var size: UInt64
        var modified: Double
    }

    let files: TLSFiles
    private let loaded = NIOLockedValueBox<Loaded?>(nil)
    /// How many times the files were read (for tests: a reload is one more).
    private let loads = NIOLockedValueBox(0)

    init(files: TLSFiles) {
        self.files = files
    }

    var loadCount: Int { loads.withLockedValue { $0 } }

    /// The current contexts, made again if a file changed since they were made.
    ///
    /// - Throws: ``CohortError/Code/badConfiguration`` when a file cannot be read or parsed;
    ///   the contexts made before stay in use only if no file changed.
    func contexts() throws -> Contexts {
        let stamps = try [files.certificate, files.privateKey, files.trustRoots].map(Self.stamp)
        if let current = loaded.withLockedValue({ $0 }), current.stamps == stamps { return current.contexts }
        let contexts = try Self.make(files)
        loaded.withLockedValue { $0 = Loaded(stamps: stamps, contexts: contexts) }
        loads.withLockedValue { $0 += 1 }
        return contexts
    }

    static func stamp(_ path: String) throws -> FileStamp {
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            func number(_ value: Any?) -> UInt64 {
                switch value {
                case let n as Int: return UInt64(truncatingIfNeeded: n)
                case let n as UInt64: return n
                case let n as UInt: return UInt64(n)
                case let n as Int64: return UInt64(truncatingIfNeeded: n)
                case let n as NSNumber: return n.uint64Value
                default: return 0
                }
            }
            return FileStamp(
                inode: number(attributes[.systemFileNumber]),
                size: number(attributes[.size]),
                modified: (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            )
        } catch {
            throw CohortError(.badConfiguration, "cannot read the TLS file '\(path)': \(error); check the path and permissions", cause: error)
        }
    }

    static func make(_ files: TLSFiles) throws -> Contexts {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        let roots: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(files.certificate)
            key = try NIOSSLPrivateKey(file: files.privateKey, format: .pem)
            roots = try NIOSSLCertificate.fromPEMFile(files.trustRoots)
        } catch {
            throw CohortError(.badConfiguration, "cannot load the TLS files (certificate '\(files.certificate)', key '\(files.privateKey)', CA '\(files.trustRoots)'): \(error); they must be PEM", cause: error)
        }
        guard !chain.isEmpty, !roots.isEmpty else {
            throw CohortError(.badConfiguration, "the TLS certificate file '\(files.certificate)' or CA file '\(files.trustRoots)' holds no certificate")
        }
        // Peers are checked against the CA, not a host name: a member's identity is its member
        // name in the certificate's subject alternative names, checked on its hello.
        var server = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        server.trustRoots = .certificates(roots)
        server.certificateVerification = .noHostnameVerification
        server.minimumTLSVersion = .tlsv12
        var client = TLSConfiguration.makeClientConfiguration()
        client.certificateChain = chain.map { .certificate($0) }
        client.privateKey = .privateKey(key)
        client.trustRoots = .certificates(roots)
        client.certificateVerification = .noHostnameVerification
        client.minimumTLSVersion = .tlsv12
        do {
            return Contexts(server: try NIOSSLContext(configuration: server), client: try NIOSSLContext(configuration: client))
        } catch {
            throw CohortError(.badConfiguration, "the TLS files do not make a usable TLS context (does the key match the certificate?): \(error)", cause: error)
        }
    }

    /// The DNS names among a certificate's subject alternative names.
    static func names(of certificate: NIOSSLCertificate) -> [String] {
        certificate._subjectAlternativeNames().compactMap { name in
            guard name.nameType == .dnsName else { return nil }
            return name.contents.withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }
        }
    }

    /// Whether a peer's certificate names `member` (its member name as a DNS SAN, compared without
    /// case).
    static func certificate(_ certificate: NIOSSLCertificate?, names member: String) -> Bool {
        guard let certificate else { return false }
        let wanted = member.lowercased()
        return names(of: certificate).contains { $0.lowercased() == wanted }
    }
}
