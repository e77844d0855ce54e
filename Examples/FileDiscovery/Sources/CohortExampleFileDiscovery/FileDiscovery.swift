import CohortCore
import Foundation
import Logging

/// Discovery from a file of `host:port` lines, watched for changes.
///
/// The file holds one address per line; text after `#` is a comment and blank lines are ignored:
/// ```
/// # the cache tier
/// 10.0.0.11:4000
/// 10.0.0.12:4000   # rack B
/// ```
/// ``run(local:report:)`` reads the file at once, reports its addresses as
/// ``CohortCore/DiscoveryEvent/candidates(_:)``, then polls it every ``interval`` and reports again
/// whenever its content changed. A file that cannot be read (missing, no permission) never empties
/// the cluster: the provider keeps the last list it read and logs a warning. A line that is not an
/// address is skipped with a warning naming the line.
public struct FileDiscovery: DiscoveryProvider {
    /// The file to read.
    public var path: String
    /// How often the file is polled.
    public var interval: Duration
    /// Where problems with the file are reported.
    public var logger: Logger

    /// Creates a provider.
    ///
    /// - Parameters:
    ///   - path: the file of `host:port` lines (relative paths are resolved against the working
    ///     directory of the process).
    ///   - interval: how often the file is polled for changes.
    ///   - logger: where unreadable files and malformed lines are reported.
    public init(path: String, interval: Duration = .milliseconds(500), logger: Logger = Logger(label: "cohort.discovery.file")) {
        self.path = path
        self.interval = interval
        self.logger = logger
    }

    public var name: String { "file" }

    public func run(local: Member, report: @escaping @Sendable (DiscoveryEvent) -> Void) async throws {
        var watcher = FileWatcher(path: path, logger: logger)
        while !Task.isCancelled {
            if let endpoints = watcher.poll() {
                report(.candidates(endpoints.filter { $0 != local.endpoint }))
            }
            do {
                try await Task.sleep(for: interval)
            } catch {
                return  // cancelled: the node is stopping
            }
        }
    }

    /// Parses the content of a members file.
    ///
    /// - Returns: the addresses in file order (duplicates removed), and for every line that is
    ///   not an address its 1-based line number and the parse error.
    public static func parse(_ text: String) -> (endpoints: [Endpoint], problems: [(line: Int, error: String)]) {
        var endpoints: [Endpoint] = []
        var seen = Set<Endpoint>()
        var problems: [(line: Int, error: String)] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let content = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let trimmed = content.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            do {
                let endpoint = try Endpoint(parsing: trimmed)
                if seen.insert(endpoint).inserted { endpoints.append(endpoint) }
            } catch let error as CohortError {
                problems.append((index + 1, error.message))
            } catch {
                problems.append((index + 1, "\(error)"))
            }
        }
        return (endpoints, problems)
    }
}

/// Remembers what the file held last time and decides when to report.
struct FileWatcher {
    let path: String
    let logger: Logger
    /// The content of the last successful read (nil before the first).
    private var lastContent: Data?
    /// Whether the last poll failed (so a failure streak is logged once, not every poll).
    private var failing = false

    init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
    }

    /// Reads the file.
    ///
    /// - Returns: the addresses to report when the content is new (the first successful read, or
    ///   a change since the last one); nil when nothing is to be reported (unchanged, or
    ///   unreadable — the previous list stays in force).
    mutating func poll() -> [Endpoint]? {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            if !failing {
                failing = true
                let kept = lastContent == nil ? "no addresses known yet" : "keeping the last list read"
                logger.warning("discovery file '\(path)' cannot be read (\(kept)): \(error.localizedDescription)")
            }
            return nil
        }
        if failing {
            failing = false
            logger.info("discovery file '\(path)' is readable again")
        }
        guard data != lastContent else { return nil }
        lastContent = data
        let (endpoints, problems) = FileDiscovery.parse(String(decoding: data, as: UTF8.self))
        for problem in problems {
            logger.warning("discovery file '\(path)' line \(problem.line) skipped: \(problem.error)")
        }
        logger.debug("discovery file '\(path)' lists \(endpoints.count) addresses")
        return endpoints
    }
}

/// Registers ``FileDiscovery`` as `discovery.file`.
///
/// Settings: `path` (required) — the members file; `interval_ms` — the poll period in
/// milliseconds (default 500).
public struct FileDiscoveryPlugin: PluginFactory {
    /// Creates the factory.
    public init() {}
    public var id: String { "discovery.file" }
    public var kind: PluginKind { .discovery }
    public var version: String { "1.0.0" }
    public var summary: String { "host:port lines from a file, watched for changes (example plugin)" }

    public func makeDiscovery(settings: PluginSettings) throws -> any DiscoveryProvider {
        let path = try settings.require("path", for: id)
        var interval = Duration.milliseconds(500)
        if let text = settings["interval_ms"] {
            guard let ms = Int(text), ms > 0 else {
                throw CohortError(.badConfiguration, "discovery.file setting 'interval_ms' must be a positive integer, got '\(text)'")
            }
            interval = .milliseconds(ms)
        }
        var logger = settings.logger
        logger[metadataKey: "discovery"] = "file"
        return FileDiscovery(path: path, interval: interval, logger: logger)
    }
}
