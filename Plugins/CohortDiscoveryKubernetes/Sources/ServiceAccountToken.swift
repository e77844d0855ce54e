import CohortCore
import Foundation

/// The pod's service-account bearer token, read from its file.
///
/// Projected service-account tokens rotate (the kubelet rewrites the file, typically every hour),
/// so the file is re-read whenever its identity (inode, size or modification time) changed since
/// the last read, and on demand after the API server answered 401.
public struct ServiceAccountToken: Sendable {
    /// The token file.
    public let path: String
    /// How many times the file was actually read (for tests and debugging).
    public private(set) var reads = 0
    private var cached: String?
    private var identity: FileIdentity?

    /// Creates a reader for a token file (nothing is read yet).
    public init(path: String) {
        self.path = path
    }

    /// The current token: the cached one if the file did not change, else the file's content.
    ///
    /// - Parameter forceReload: read the file even if it looks unchanged (after a 401).
    /// - Returns: the token, without surrounding white space.
    /// - Throws: ``CohortError/Code/badConfiguration`` when the file is missing, unreadable or
    ///   empty.
    public mutating func current(forceReload: Bool = false) throws -> String {
        let now = FileIdentity(path: path)
        if !forceReload, let cached, let now, now == identity { return cached }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CohortError(
                .badConfiguration,
                "discovery.kubernetes has no service-account token: cannot read \(path); mount one (automountServiceAccountToken: true, the default) or point the 'tokenFile' setting / SA_TOKEN_FILE at it"
            )
        }
        reads += 1
        let token = String(decoding: data, as: UTF8.self).trimmedForSettings
        guard !token.isEmpty else {
            throw CohortError(.badConfiguration, "discovery.kubernetes: the service-account token file \(path) is empty")
        }
        cached = token
        identity = now
        return token
    }

    /// The service account a token belongs to, read from its JWT claims (`sub` is
    /// `system:serviceaccount:<namespace>:<name>`). The signature is not checked: this is only
    /// for error messages.
    ///
    /// - Returns: `(namespace, name)`, or nil when the token is not such a JWT.
    public static func serviceAccount(ofJWT token: String) -> (namespace: String, name: String)? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64),
            let claims = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let subject = claims["sub"] as? String
        else { return nil }
        let fields = subject.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count == 4, fields[0] == "system", fields[1] == "serviceaccount" else { return nil }
        return (String(fields[2]), String(fields[3]))
    }
}

/// What identifies one version of a file: a rewrite in place changes the size or modification
/// time, an atomic replace (the kubelet swaps a symbolic link) changes the inode.
struct FileIdentity: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var modifiedSeconds: Int64
    var modifiedNanoseconds: Int64

    /// The identity of the file a path leads to (following links), or nil if there is none.
    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modifiedSeconds = Int64(info.st_mtim.tv_sec)
        modifiedNanoseconds = Int64(info.st_mtim.tv_nsec)
    }
}
