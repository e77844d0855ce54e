import ArgumentParser
import Cohort
import Foundation

/// Cluster credentials on the command line (shared by `serve` and `node`).
///
/// The keys themselves never go on the command line, where `ps` shows them to every user of the
/// machine: they come from a file (`--cluster-key-file`), the environment (`COHORT_CLUSTER_KEYS`)
/// or the configuration file (`clusterKeys`).
struct SecurityOptions: ParsableArguments {
    @Option(help: ArgumentHelp("File holding the cluster keys (ID:HEX, comma- or line-separated; the first opens connections). Make one with `cohort key`.", valueName: "FILE"))
    var clusterKeyFile: String?
    @Flag(help: "Run without cluster credentials even though the cluster listener is reachable beyond loopback (trusted networks only).")
    var insecure = false

    /// Sets the keys and the insecure flag on a configuration (before it is validated).
    func apply(to configuration: inout ClusterConfiguration) throws {
        if insecure { configuration.insecure = true }
        if let clusterKeyFile {
            guard let data = FileManager.default.contents(atPath: clusterKeyFile) else {
                throw CohortError(.badConfiguration, "cannot read the cluster key file '\(clusterKeyFile)'; check the path and permissions")
            }
            let text = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).joined(separator: ",")
            do {
                configuration.clusterKeys = try ClusterKey.parseList(text)
            } catch let error as CohortError {
                throw CohortError(.badConfiguration, "cluster key file '\(clusterKeyFile)': \(error.message)")
            }
            if configuration.clusterKeys.isEmpty {
                throw CohortError(.badConfiguration, "the cluster key file '\(clusterKeyFile)' holds no key; make one with `cohort key`")
            }
        }
    }
}

struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Print a new random cluster key (ID:HEX) for shared-key mode.",
        discussion: """
            Give every member the same key: COHORT_CLUSTER_KEYS=$(cohort key), the configuration \
            key clusterKeys, or a file named by --cluster-key-file. To rotate, add the new key (a \
            new --id) after the old one on every member, then move it first, then remove the old \
            one (docs/security.md).
            """
    )

    @Option(help: "The key's id (1–65535).") var id: UInt16 = 1

    func validate() throws {
        guard id != 0 else { throw ValidationError("--id must be between 1 and 65535") }
    }

    func run() throws {
        Console.line(ClusterKey.generate(id: id).text)
    }
}
