/// What kind of thing a plugin provides.
import Logging
import NIOConcurrencyHelpers

public enum PluginKind: String, Sendable, Codable, CaseIterable {
    case transport
    case codec
    case discovery
    /// An interceptor stage, named by its id in the channel configuration's `interceptors` list.
    case interceptor
}

/// Key/value settings handed to a plugin factory (from the configuration file or the CLI).
public struct PluginSettings: Sendable, Equatable {
    /// The raw values.
    public var values: [String: String]
    /// The node's transport settings.
    public var transport: TransportSettings
    /// A logger for the plugin.
    public var logger: Logger

    public init(values: [String: String] = [:], transport: TransportSettings = TransportSettings(), logger: Logger = Logger(label: "cohort.plugin")) {
        self.values = values
        self.transport = transport
        self.logger = logger
    }

    public static func == (lhs: PluginSettings, rhs: PluginSettings) -> Bool {
        lhs.values == rhs.values && lhs.transport == rhs.transport
    }

    /// A value, or nil.
    public subscript(key: String) -> String? { values[key] }

    /// A required value.
    ///
    /// - Throws: ``CohortError/Code/badConfiguration`` naming the key.
    public func require(_ key: String, for plugin: String) throws -> String {
        guard let value = values[key], !value.isEmpty else {
            throw CohortError(.badConfiguration, "plugin '\(plugin)' needs the setting '\(key)'; set it in the plugin's settings in the configuration file")
        }
        return value
    }
}

/// Where a plugin came from.
public enum PluginOrigin: Sendable, Equatable, CustomStringConvertible {
    /// Linked into the executable.
    case builtIn
    /// Loaded at run time from a shared library.
    case file(String)

    public var description: String {
        switch self {
        case .builtIn: return "built-in"
        case .file(let path): return path
        }
    }
}

/// A factory a plugin registers: makes transports, codecs or discovery providers.
public protocol PluginFactory: Sendable {
    /// The id users name in configuration (`transport.tcp`, `codec.binary`, `discovery.static`).
    var id: String { get }
    /// What it makes.
    var kind: PluginKind { get }
    /// Its version, for `cohort plugins`.
    var version: String { get }
    /// A one-line description.
    var summary: String { get }
    /// Makes a transport. Only for ``PluginKind/transport``.
    func makeTransport(settings: PluginSettings) throws -> any Transport
    /// Makes a codec. Only for ``PluginKind/codec``.
    func makeCodec(settings: PluginSettings) throws -> any MessageCodec
    /// Makes a discovery provider. Only for ``PluginKind/discovery``.
    func makeDiscovery(settings: PluginSettings) throws -> any DiscoveryProvider
    /// Makes an interceptor stage. Only for ``PluginKind/interceptor``.
    func makeInterceptor(settings: PluginSettings) throws -> any Interceptor
}

extension PluginFactory {
    private func wrongKind(_ wanted: PluginKind) -> CohortError {
        CohortError(.badConfiguration, "plugin '\(id)' is a \(kind) plugin, not a \(wanted) plugin")
    }
    public func makeTransport(settings: PluginSettings) throws -> any Transport { throw wrongKind(.transport) }
    public func makeCodec(settings: PluginSettings) throws -> any MessageCodec { throw wrongKind(.codec) }
    public func makeDiscovery(settings: PluginSettings) throws -> any DiscoveryProvider { throw wrongKind(.discovery) }
    public func makeInterceptor(settings: PluginSettings) throws -> any Interceptor { throw wrongKind(.interceptor) }
}

/// A registered plugin, as `cohort plugins` lists it.
public struct PluginInfo: Sendable, Equatable {
    public var id: String
    public var kind: PluginKind
    public var version: String
    public var summary: String
    public var origin: PluginOrigin

    public init(id: String, kind: PluginKind, version: String, summary: String, origin: PluginOrigin) {
        self.id = id
        self.kind = kind
        self.version = version
        self.summary = summary
        self.origin = origin
    }
}

/// The plugins a host knows, by id. Thread-safe. A channel made from configuration gets its own
/// unless one is passed in; there is no process-wide registry.
public final class PluginRegistry: Sendable {
    private let state = NIOLockedValueBox<[String: (factory: any PluginFactory, origin: PluginOrigin)]>([:])

    /// Creates an empty registry.
    public init() {}

    /// Registers a factory.
    ///
    /// - Throws: ``CohortError/Code/duplicatePlugin`` if the id is taken.
    public func register(_ factory: any PluginFactory, origin: PluginOrigin = .builtIn) throws {
        try state.withLockedValue { entries in
            if let existing = entries[factory.id] {
                throw CohortError(
                    .duplicatePlugin,
                    "plugin id '\(factory.id)' from \(origin) is already registered (from \(existing.origin)); load each plugin once, or rename one of them"
                )
            }
            entries[factory.id] = (factory, origin)
        }
    }

    /// Registers a factory unless its id is already present (for idempotent built-in setup).
    public func registerIfAbsent(_ factory: any PluginFactory) {
        state.withLockedValue { entries in
            if entries[factory.id] == nil { entries[factory.id] = (factory, .builtIn) }
        }
    }

    /// The factory with an id.
    ///
    /// - Throws: ``CohortError/Code/pluginNotFound``, listing the ids of that kind it knows.
    public func factory(_ id: String, kind: PluginKind) throws -> any PluginFactory {
        try state.withLockedValue { entries in
            let resolvedID = entries[id] != nil ? id : "\(kind.rawValue).\(id)"
            guard let entry = entries[resolvedID] else {
                let known = entries.values.filter { $0.factory.kind == kind }.map(\.factory.id).sorted()
                throw CohortError(
                    .pluginNotFound,
                    "no \(kind) plugin '\(id)' (known: \(known.joined(separator: ", "))); load its library with --plugin PATH or a 'plugins:' entry"
                )
            }
            guard entry.factory.kind == kind else {
                throw CohortError(.badConfiguration, "plugin '\(resolvedID)' is a \(entry.factory.kind) plugin, not a \(kind) plugin")
            }
            return entry.factory
        }
    }

    /// Everything registered, sorted by id.
    public var plugins: [PluginInfo] {
        state.withLockedValue { entries in
            entries.values.map {
                PluginInfo(id: $0.factory.id, kind: $0.factory.kind, version: $0.factory.version, summary: $0.factory.summary, origin: $0.origin)
            }.sorted { $0.id < $1.id }
        }
    }
}
