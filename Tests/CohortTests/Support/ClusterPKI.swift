import Cohort
import Foundation
@testable import CohortTransportTCP

/// Throw-away certificate authorities and member certificates for mutual-TLS tests, made with the
/// `openssl` command-line tool in a temporary directory of their own (removed on deinit), as
/// Tests/CohortCloudDiscoveryTests/Support/TestPKI.swift does.
final class ClusterPKI: @unchecked Sendable {
    let directory: String

    static let openssl: String? = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/bin/openssl"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    static var available: Bool { openssl != nil }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func path(_ name: String) -> String { directory + "/" + name }

    /// A CA named `ca` (files `ca.crt`, `ca.key`).
    func makeCA(_ ca: String) throws {
        try run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", "\(ca).key", "-out", "\(ca).crt", "-days", "2", "-subj", "/CN=\(ca)",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    }

    /// A member certificate `file.crt`/`file.key` signed by `ca`, naming `dnsName` in its SAN.
    func makeMember(_ file: String, dnsName: String, ca: String) throws -> TLSFiles {
        try """
            basicConstraints = critical, CA:FALSE
            keyUsage = critical, digitalSignature
            extendedKeyUsage = serverAuth, clientAuth
            subjectAltName = DNS:\(dnsName)
            """.write(toFile: path("\(file).ext"), atomically: true, encoding: .utf8)
        try run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", "\(file).key", "-out", "\(file).csr", "-subj", "/CN=\(dnsName)"])
        try run(["x509", "-req", "-in", "\(file).csr", "-CA", "\(ca).crt", "-CAkey", "\(ca).key", "-CAcreateserial",
                 "-out", "\(file).crt", "-days", "2", "-extfile", "\(file).ext"])
        return TLSFiles(certificate: path("\(file).crt"), privateKey: path("\(file).key"), trustRoots: path("\(ca).crt"))
    }

    /// Replaces `destination` with a copy of `source` (a new inode, as a Secret rotation does).
    func replace(_ destination: String, with source: String) throws {
        let temporary = destination + ".new"
        try? FileManager.default.removeItem(atPath: temporary)
        try FileManager.default.copyItem(atPath: source, toPath: temporary)
        // rename(2): atomic, and replaces the destination if there is one.
        guard rename(temporary, destination) == 0 else {
            throw CohortError(.internal, "cannot move \(temporary) to \(destination): errno \(errno)")
        }
    }

    private func run(_ arguments: [String]) throws {
        guard let openssl = Self.openssl else { throw CohortError(.internal, "no openssl executable") }
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
}
