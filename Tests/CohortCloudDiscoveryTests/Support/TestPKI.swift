import Cohort
import Foundation
import NIOConcurrencyHelpers

/// A throw-away certificate authority and a server certificate for `127.0.0.1`, made with the
/// `openssl` command-line tool in a temporary directory, once per test process.
struct TestPKI: Sendable {
    /// The directory holding the files.
    let directory: String
    /// The CA certificate (PEM) the client trusts.
    var caFile: String { directory + "/ca.crt" }
    /// The server certificate (PEM), for `IP:127.0.0.1` and `DNS:localhost`.
    var serverCertificateFile: String { directory + "/server.crt" }
    /// The server's private key (PEM).
    var serverKeyFile: String { directory + "/server.key" }

    /// The `openssl` executable, if there is one.
    static let openssl: String? = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/bin/openssl"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// Whether certificates can be made here.
    static var available: Bool { openssl != nil }

    /// The one PKI of this process.
    static let shared: Result<TestPKI, any Error> = Result { try TestPKI.make() }

    /// The shared PKI, or the error that prevented making it.
    static func get() throws -> TestPKI { try shared.get() }

    private static let createdDirectory = NIOLockedValueBox<String?>(nil)

    private static func make() throws -> TestPKI {
        guard let openssl else { throw CohortError(.internal, "no openssl executable") }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-k8s-pki-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        createdDirectory.withLockedValue { $0 = directory }
        // Removed when the test process exits.
        atexit {
            if let directory = TestPKI.createdDirectory.withLockedValue({ $0 }) { try? FileManager.default.removeItem(atPath: directory) }
        }
        let extensions = """
            basicConstraints = critical, CA:FALSE
            keyUsage = critical, digitalSignature, keyEncipherment
            extendedKeyUsage = serverAuth
            subjectAltName = IP:127.0.0.1, DNS:localhost
            """
        try extensions.write(toFile: directory + "/server.ext", atomically: true, encoding: .utf8)
        let steps: [[String]] = [
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=cohort test cluster CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
            ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "2", "-extfile", "server.ext"],
        ]
        for arguments in steps {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: openssl)
            process.arguments = arguments
            process.currentDirectoryURL = URL(fileURLWithPath: directory)
            process.standardOutput = FileHandle.nullDevice
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let message = errors.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw CohortError(.internal, "openssl \(arguments.first ?? "") failed: \(String(decoding: message, as: UTF8.self))")
            }
        }
        return TestPKI(directory: directory)
    }
}

/// A temporary directory removed on deinit.
final class ScratchDirectory: @unchecked Sendable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-cloud-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    /// Writes a text file atomically (a new inode, as the kubelet's symbolic-link swap does).
    @discardableResult
    func write(_ text: String, to name: String) throws -> String {
        try text.write(toFile: file(name), atomically: true, encoding: .utf8)
        return file(name)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A JWT-shaped service-account token (unsigned; the stub only compares strings).
func fakeServiceAccountToken(namespace: String, account: String, serial: Int) -> String {
    func base64URL(_ text: String) -> String {
        Data(text.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
    let header = base64URL(#"{"alg":"RS256","kid":"test"}"#)
    let claims = base64URL(#"{"iss":"https://kubernetes.default.svc","sub":"system:serviceaccount:\#(namespace):\#(account)","n":\#(serial)}"#)
    return "\(header).\(claims).c2lnbmF0dXJl"
}
