import Cohort
import Logging
import NIOConcurrencyHelpers

/// Captures log lines in memory, so a test can look at them or print them only when it fails.
public final class LogCapture: @unchecked Sendable {
    /// One captured line.
    public struct Entry: Sendable, CustomStringConvertible {
        public var label: String
        public var level: Logger.Level
        public var message: String
        public var metadata: Logger.Metadata
        public var description: String {
            let node = metadata["node"].map { "[\($0)] " } ?? ""
            return "\(level) \(label) \(node)\(message)"
        }
    }

    private let lock = NIOLock()
    private var entries: [Entry] = []
    /// The lowest level captured.
    public let level: Logger.Level

    public init(level: Logger.Level = .debug) {
        self.level = level
    }

    /// A logger that writes into this capture.
    public func logger(_ label: String) -> Logger {
        var logger = Logger(label: label) { label in Handler(label: label, capture: self) }
        logger.logLevel = level
        return logger
    }

    /// Everything captured so far.
    public var all: [Entry] { lock.withLock { entries } }

    /// Captured lines containing a text.
    public func lines(containing text: String) -> [Entry] { all.filter { $0.message.contains(text) } }

    /// Everything as text, one line each.
    public var text: String { all.map(\.description).joined(separator: "\n") }

    func append(_ entry: Entry) { lock.withLock { entries.append(entry) } }

    struct Handler: LogHandler {
        let label: String
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            var merged = self.metadata
            if let metadata { merged.merge(metadata) { $1 } }
            capture.append(Entry(label: label, level: level, message: message.description, metadata: merged))
        }
    }
}
