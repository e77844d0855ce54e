import CCohortPluginABI
import CohortCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The plugin side of the boundary: turns a library's Swift factories into the C table a host
/// loads.
///
/// A plugin library exports one C function that returns ``entry(_:)``'s pointer:
///
/// ```swift
/// import CohortPluginSDK
///
/// @_cdecl("cohort_plugin_entry")
/// public func cohortPluginEntry() -> UnsafeRawPointer? {
///     PluginExport.entry([FileDiscoveryPlugin()])
/// }
/// ```
///
/// The library links its own copy of the core (and of NIO, if it uses it) statically; nothing
/// Swift crosses to the host. Transports, codecs and discovery providers made by the factories
/// are driven by the host through operations on a port (see docs/plugins.md). A plugin's log
/// records go to the host's logger.
public enum PluginExport {
    private struct State: @unchecked Sendable {
        // The table is written once and never freed; the pointer is only handed out.
        var api: UnsafeMutablePointer<cohort_plugin_api>?
        var factories: [any PluginFactory] = []
    }
    private static let state = NIOLockedValueBox(State())

    /// The library's entry table, made once from its factories (later calls return the same
    /// table and ignore their argument).
    public static func entry(_ factories: [any PluginFactory]) -> UnsafeRawPointer? {
        state.withLockedValue { state in
            if let api = state.api { return UnsafeRawPointer(api) }
            state.factories = factories
            let manifest = PluginManifestJSON(
                sdk: "CohortPluginSDK/\(COHORT_PLUGIN_ABI)",
                plugins: factories.map { .init(id: $0.id, kind: $0.kind.rawValue, version: $0.version, summary: $0.summary) }
            )
            let json = (try? JSONEncoder().encode(manifest)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            let api = UnsafeMutablePointer<cohort_plugin_api>.allocate(capacity: 1)
            api.initialize(to: cohort_plugin_api(
                abi_version: UInt32(COHORT_PLUGIN_ABI),
                size: UInt32(MemoryLayout<cohort_plugin_api>.size),
                manifest_json: UnsafePointer(strdup(json)),
                create: { id, settings, count, host, instance, errorContext, error in
                    PluginExport.create(
                        id: String(cString: id),
                        settings: ByteBuffer(bytes: UnsafeBufferPointer(start: settings, count: settings == nil ? 0 : count)),
                        host: host,
                        instance: instance,
                        error: PluginReply(context: errorContext, function: error)
                    )
                }
            ))
            state.api = api
            return UnsafeRawPointer(api)
        }
    }

    private static func create(
        id: String,
        settings: ByteBuffer,
        host: cohort_plugin_port,
        instance: UnsafeMutablePointer<cohort_plugin_port>,
        error: PluginReply
    ) -> Int32 {
        let hostPort = RemotePort(host, name: "the host")
        do {
            let factories = state.withLockedValue { $0.factories }
            guard let factory = factories.first(where: { $0.id == id }) else {
                throw CohortError(.pluginNotFound, "this library has no plugin '\(id)' (it has: \(factories.map(\.id).joined(separator: ", ")))")
            }
            let decoded = try PluginSettingsJSON.decode(settings)
            var logger = Logger(label: decoded.label) { label in ForwardingLogHandler(host: hostPort, label: label) }
            logger.logLevel = Logger.Level(rawValue: decoded.logLevel) ?? .info
            let pluginSettings = PluginSettings(values: decoded.values, transport: decoded.transport, logger: logger)
            let handler: any PluginPortHandler
            switch factory.kind {
            case .transport:
                handler = ExportedTransport(try factory.makeTransport(settings: pluginSettings), host: hostPort)
            case .codec:
                handler = ExportedCodec(try factory.makeCodec(settings: pluginSettings), host: hostPort)
            case .discovery:
                handler = ExportedDiscovery(try factory.makeDiscovery(settings: pluginSettings), host: hostPort)
            case .interceptor:
                handler = ExportedInterceptor(try factory.makeInterceptor(settings: pluginSettings), host: hostPort)
            }
            instance.pointee = makePort(handler)
            return 0
        } catch let failure {
            error.fail(failure)
            return 1
        }
    }
}

/// The manifest a library publishes (`manifest_json`).
struct PluginManifestJSON: Codable {
    struct Entry: Codable {
        var id: String
        var kind: String
        var version: String
        var summary: String
    }
    var sdk: String
    var plugins: [Entry]
}

/// The settings a host hands `create` (JSON).
struct PluginSettingsJSON: Codable {
    var values: [String: String]
    var transport: TransportSettings
    var logLevel: String
    var label: String

    init(_ settings: PluginSettings) {
        values = settings.values
        transport = settings.transport
        logLevel = settings.logger.logLevel.rawValue
        label = settings.logger.label
    }

    static func decode(_ bytes: ByteBuffer) throws -> PluginSettingsJSON {
        do {
            return try JSONDecoder().decode(PluginSettingsJSON.self, from: Data(bytes.readableBytesView))
        } catch {
            throw CohortError(.badConfiguration, "the host's plugin settings are not readable: \(error)")
        }
    }

    func encoded() -> ByteBuffer {
        ByteBuffer(bytes: (try? JSONEncoder().encode(self)) ?? Data("{}".utf8))
    }
}

/// A plugin's log handler: every record goes to the host's logger.
struct ForwardingLogHandler: LogHandler {
    let host: RemotePort
    let label: String
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        var bytes = ByteBuffer()
        bytes.writeLengthPrefixedString(event.level.rawValue)
        bytes.writeLengthPrefixedString(event.message.description)
        bytes.writeLengthPrefixedString(event.source)
        bytes.writeLengthPrefixedString(event.file)
        bytes.writeLengthPrefixedString(event.function)
        bytes.writeInteger(UInt64(event.line))
        bytes.writeInteger(UInt32(truncatingIfNeeded: merged.count))
        for (key, value) in merged {
            bytes.writeLengthPrefixedString(key)
            bytes.writeLengthPrefixedString("\(value)")
        }
        host.tell(PluginOperation.log, bytes)
    }
}

/// Logs a record a plugin forwarded (see ``ForwardingLogHandler``) on the host's logger.
func logForwardedRecord(_ bytes: ByteBuffer, on logger: Logger) {
    var bytes = bytes
    guard let levelName = try? bytes.readLengthPrefixedStringChecked(),
        let message = try? bytes.readLengthPrefixedStringChecked(),
        let source = try? bytes.readLengthPrefixedStringChecked(),
        let file = try? bytes.readLengthPrefixedStringChecked(),
        let function = try? bytes.readLengthPrefixedStringChecked(),
        let line = bytes.readInteger(as: UInt64.self),
        let count = try? bytes.readPluginCount(minimumBytesEach: 8)
    else { return }
    var metadata: Logger.Metadata = [:]
    for _ in 0..<count {
        guard let key = try? bytes.readLengthPrefixedStringChecked(), let value = try? bytes.readLengthPrefixedStringChecked() else { break }
        metadata[key] = .string(value)
    }
    logger.log(level: Logger.Level(rawValue: levelName) ?? .info, "\(message)", metadata: metadata, source: source, file: file, function: function, line: UInt(clamping: line))
}

// MARK: - exported instances

/// A transport made by a plugin, driven by the host through its port.
final class ExportedTransport: PluginPortHandler {
    let transport: any Transport
    let host: RemotePort

    init(_ transport: any Transport, host: RemotePort) {
        self.transport = transport
        self.host = host
    }

    func portReleased() {}

    func handle(operation: UInt32, bytes: ByteBuffer, reply: PluginReply?) {
        var bytes = bytes
        do {
            switch operation {
            case PluginOperation.start:
                let local = try bytes.readPluginMember()
                let delegate = ForwardingDelegate(host: host)
                answer(reply) { [transport] in
                    var out = ByteBuffer()
                    out.writePlugin(try await transport.start(local: local, delegate: delegate))
                    return out
                }
            case PluginOperation.handshake:
                let endpoint = try bytes.readPluginEndpoint()
                let timeout = try bytes.readPluginDuration()
                answer(reply) { [transport] in
                    var out = ByteBuffer()
                    out.writePlugin(try await transport.handshake(with: endpoint, timeout: timeout))
                    return out
                }
            case PluginOperation.send:
                let message = try bytes.readPluginOutbound()
                let members = try bytes.readPluginMembers()
                answer(reply) { [transport] in
                    var out = ByteBuffer()
                    out.writePlugin(await transport.send(message, to: members))
                    return out
                }
            case PluginOperation.heartbeat:
                transport.heartbeat(to: try bytes.readPluginMembers())
                reply?.succeed()
            case PluginOperation.probe:
                let member = try bytes.readPluginMember()
                let timeout = try bytes.readPluginDuration()
                answer(reply) { [transport] in
                    var out = ByteBuffer()
                    out.writePlugin(await transport.probe(member, timeout: timeout))
                    return out
                }
            case PluginOperation.leave:
                let members = try bytes.readPluginMembers()
                answer(reply) { [transport] in
                    await transport.leave(notifying: members)
                    return ByteBuffer()
                }
            case PluginOperation.forget:
                transport.forget(try bytes.readPluginMember())
                reply?.succeed()
            case PluginOperation.shutdown:
                answer(reply) { [transport] in
                    await transport.shutdown()
                    return ByteBuffer()
                }
            default:
                throw CohortError(.internal, "a transport plugin got unknown operation \(operation)")
            }
        } catch {
            reply?.fail(error)
        }
    }
}

/// Runs `work` in a task and answers with its result.
private func answer(_ reply: PluginReply?, _ work: @escaping @Sendable () async throws -> ByteBuffer) {
    Task {
        do {
            let result = try await work()
            reply?.succeed(result)
        } catch {
            reply?.fail(error)
        }
    }
}

/// The transport delegate inside the plugin: every event goes to the host.
final class ForwardingDelegate: TransportDelegate {
    let host: RemotePort

    init(host: RemotePort) { self.host = host }

    private func tell(_ operation: UInt32, _ member: Member, reason: String? = nil) {
        var bytes = ByteBuffer()
        bytes.writePlugin(member)
        if let reason { bytes.writeLengthPrefixedString(reason) }
        host.tell(operation, bytes)
    }

    func transport(didAccept member: Member) { tell(PluginOperation.accepted, member) }
    func transport(heardFrom member: Member) { tell(PluginOperation.heard, member) }
    func transport(sawActivityFrom member: Member) { tell(PluginOperation.activity, member) }
    func transport(lostConnectionTo member: Member, reason: String) { tell(PluginOperation.lostConnection, member, reason: reason) }
    func transport(memberLeft member: Member) { tell(PluginOperation.memberLeft, member) }

    func transport(asyncMessagesFailed count: Int, to member: Member, reason: String) {
        var bytes = ByteBuffer()
        bytes.writeInteger(Int64(count))
        bytes.writePlugin(member)
        bytes.writeLengthPrefixedString(reason)
        host.tell(PluginOperation.asyncFailed, bytes)
    }

    func transport(received message: InboundMessage) async -> DeliveryResult {
        var bytes = ByteBuffer()
        bytes.writePlugin(message)
        do {
            var answer = try await host.request(PluginOperation.received, bytes)
            return try answer.readPluginDeliveryResult()
        } catch {
            return .rejected("the host did not take the message: \(error)")
        }
    }
}

/// A codec made by a plugin: it encodes and decodes trees, at once.
final class ExportedCodec: PluginPortHandler {
    let codec: any MessageCodec
    let host: RemotePort

    init(_ codec: any MessageCodec, host: RemotePort) {
        self.codec = codec
        self.host = host
    }

    func portReleased() {}

    func handle(operation: UInt32, bytes: ByteBuffer, reply: PluginReply?) {
        var bytes = bytes
        do {
            switch operation {
            case PluginOperation.describe:
                var out = ByteBuffer()
                out.writeInteger(codec.id.rawValue)
                out.writeLengthPrefixedString(codec.name)
                reply?.succeed(out)
            case PluginOperation.encode:
                let tree = try PluginValue.read(from: &bytes)
                var out = ByteBuffer()
                try codec.encode(tree, into: &out)
                reply?.succeed(out)
            case PluginOperation.decode:
                let before = bytes.readableBytes
                let tree = try codec.decode(PluginValue.self, from: &bytes)
                var out = ByteBuffer()
                out.writeInteger(UInt32(truncatingIfNeeded: before - bytes.readableBytes))
                tree.write(to: &out)
                reply?.succeed(out)
            default:
                throw CohortError(.internal, "a codec plugin got unknown operation \(operation)")
            }
        } catch {
            reply?.fail(error)
        }
    }
}

/// A discovery provider made by a plugin.
final class ExportedDiscovery: PluginPortHandler {
    let provider: any DiscoveryProvider
    let host: RemotePort
    private let running = NIOLockedValueBox<[UInt64: Task<Void, Never>]>([:])

    init(_ provider: any DiscoveryProvider, host: RemotePort) {
        self.provider = provider
        self.host = host
    }

    func portReleased() {
        for task in running.withLockedValue({ Array($0.values) }) { task.cancel() }
    }

    func handle(operation: UInt32, bytes: ByteBuffer, reply: PluginReply?) {
        var bytes = bytes
        do {
            switch operation {
            case PluginOperation.describe:
                var out = ByteBuffer()
                out.writeLengthPrefixedString(provider.name)
                reply?.succeed(out)
            case PluginOperation.run:
                let runID = try bytes.readPluginInteger(UInt64.self)
                let local = try bytes.readPluginMember()
                // Registered under the lock the task takes to remove itself, so it cannot end
                // before it is registered.
                running.withLockedValue { tasks in
                    tasks[runID] = Task { [provider, host, running] in
                        do {
                            try await provider.run(local: local) { event in
                                var out = ByteBuffer()
                                out.writePlugin(event)
                                host.tell(PluginOperation.discovered, out)
                            }
                            reply?.succeed()
                        } catch {
                            reply?.fail(error)
                        }
                        running.withLockedValue { _ = $0.removeValue(forKey: runID) }
                    }
                }
            case PluginOperation.cancelRun:
                let runID = try bytes.readPluginInteger(UInt64.self)
                running.withLockedValue { $0[runID] }?.cancel()
                reply?.succeed()
            case PluginOperation.discoveryLeave:
                let local = try bytes.readPluginMember()
                answer(reply) { [provider] in
                    await provider.leave(local: local)
                    return ByteBuffer()
                }
            default:
                throw CohortError(.internal, "a discovery plugin got unknown operation \(operation)")
            }
        } catch {
            reply?.fail(error)
        }
    }
}
