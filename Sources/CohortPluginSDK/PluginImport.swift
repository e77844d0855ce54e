import CCohortPluginABI
import CohortCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The host side of the boundary: factories for the plugins a loaded library offers, whose
/// instances drive the library through its C table.
public enum PluginImport {
    /// Reads a library's entry table and returns a factory per plugin it names.
    ///
    /// - Parameters:
    ///   - entry: what the library's `cohort_plugin_entry` returned.
    ///   - path: the library's file, for messages.
    /// - Throws: ``CohortError/Code/pluginLoadFailed`` for a table built for another ABI, or one
    ///   whose manifest cannot be read.
    public static func factories(entry: UnsafeRawPointer?, path: String) throws -> [any PluginFactory] {
        guard let entry else {
            throw CohortError(.pluginLoadFailed, "'\(path)' is not a Cohort plugin: its entry point 'cohort_plugin_entry' returned no table")
        }
        // Only the first field is read before the version is known to match.
        let abi = entry.load(as: UInt32.self)
        guard abi == UInt32(COHORT_PLUGIN_ABI) else {
            throw CohortError(.pluginLoadFailed, "'\(path)' was built for plugin ABI \(abi), this host speaks ABI \(COHORT_PLUGIN_ABI); rebuild the plugin against this Cohort release")
        }
        let api = entry.assumingMemoryBound(to: cohort_plugin_api.self)
        guard Int(api.pointee.size) >= MemoryLayout<cohort_plugin_api>.size else {
            throw CohortError(.pluginLoadFailed, "'\(path)' has a plugin table of \(api.pointee.size) bytes, smaller than ABI \(COHORT_PLUGIN_ABI)'s \(MemoryLayout<cohort_plugin_api>.size); it was not built with CohortPluginSDK")
        }
        guard let json = api.pointee.manifest_json, api.pointee.create != nil else {
            throw CohortError(.pluginLoadFailed, "'\(path)' has an incomplete plugin table (no manifest or no create function)")
        }
        let manifest: PluginManifestJSON
        do {
            manifest = try JSONDecoder().decode(PluginManifestJSON.self, from: Data(String(cString: json).utf8))
        } catch {
            throw CohortError(.pluginLoadFailed, "'\(path)' has a plugin manifest that is not valid: \(error)")
        }
        guard !manifest.plugins.isEmpty else {
            throw CohortError(.pluginLoadFailed, "'\(path)' is a Cohort plugin library that names no plugins")
        }
        let table = PluginTable(api: UnsafePointer(api), path: path)
        return try manifest.plugins.map { entry in
            guard let kind = PluginKind(rawValue: entry.kind) else {
                throw CohortError(.pluginLoadFailed, "'\(path)' offers '\(entry.id)' of kind '\(entry.kind)', which this host does not know (known: \(PluginKind.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return LoadedPluginFactory(id: entry.id, kind: kind, version: entry.version, summary: entry.summary, table: table)
        }
    }
}

/// A factory, transport, codec or discovery provider that lives in a loaded library.
public protocol LoadedPluginPart: Sendable {
    /// The library's file.
    var library: String { get }
    /// The plugin's id.
    var pluginID: String { get }
}

/// A loaded library's table. Libraries are never unloaded, so the pointer stays valid.
struct PluginTable: @unchecked Sendable {
    let api: UnsafePointer<cohort_plugin_api>
    let path: String

    /// Makes an instance of a plugin: returns the port to drive it.
    func create(id: String, settings: PluginSettings, host: any PluginPortHandler) throws -> RemotePort {
        guard let create = api.pointee.create else {
            throw CohortError(.pluginLoadFailed, "'\(path)' has no create function")
        }
        let settingsBytes = PluginSettingsJSON(settings).encoded()
        let errorBox = ErrorBox()
        var instance = cohort_plugin_port(context: nil, invoke: nil, release: nil)
        let hostPort = makePort(host)
        let status = settingsBytes.withUnsafeReadableBytes { raw in
            id.withCString { cID in
                create(cID, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), raw.count, hostPort, &instance, Unmanaged.passUnretained(errorBox).toOpaque()) { context, _, bytes, count in
                    guard let context else { return }
                    let box = Unmanaged<ErrorBox>.fromOpaque(context).takeUnretainedValue()
                    box.error = pluginError(fromUTF8: UnsafeBufferPointer(start: bytes, count: bytes == nil ? 0 : count))
                }
            }
        }
        guard status == 0 else {
            // The plugin owns the host port even when create fails, and releases it.
            let error = errorBox.error ?? CohortError(.internal, "no reason given")
            throw CohortError(error.code, "plugin '\(id)' from '\(path)' could not be made: \(error.message)")
        }
        return RemotePort(instance, name: "plugin '\(id)' from '\(path)'")
    }
}

private final class ErrorBox {
    var error: CohortError?
}

/// A factory whose instances live in a loaded library.
final class LoadedPluginFactory: PluginFactory, LoadedPluginPart {
    var library: String { table.path }
    var pluginID: String { id }
    let id: String
    let kind: PluginKind
    let version: String
    let summary: String
    let table: PluginTable

    init(id: String, kind: PluginKind, version: String, summary: String, table: PluginTable) {
        self.id = id
        self.kind = kind
        self.version = version
        self.summary = summary
        self.table = table
    }

    func makeTransport(settings: PluginSettings) throws -> any Transport {
        guard kind == .transport else { throw CohortError(.badConfiguration, "plugin '\(id)' is a \(kind) plugin, not a transport plugin") }
        let events = TransportEvents(logger: settings.logger)
        let port = try table.create(id: id, settings: settings, host: events)
        return LoadedTransport(port: port, events: events, library: table.path, pluginID: id)
    }

    func makeInterceptor(settings: PluginSettings) throws -> any Interceptor {
        guard kind == .interceptor else { throw CohortError(.badConfiguration, "plugin '\(id)' is a \(kind) plugin, not an interceptor plugin") }
        let port = try table.create(id: id, settings: settings, host: LogOnlyHost(logger: settings.logger))
        var description = try port.requestNow(PluginOperation.describe)
        return LoadedInterceptor(name: try description.readLengthPrefixedStringChecked(), port: port, library: table.path, pluginID: id)
    }

    func makeCodec(settings: PluginSettings) throws -> any MessageCodec {
        guard kind == .codec else { throw CohortError(.badConfiguration, "plugin '\(id)' is a \(kind) plugin, not a codec plugin") }
        let port = try table.create(id: id, settings: settings, host: LogOnlyHost(logger: settings.logger))
        var description = try port.requestNow(PluginOperation.describe)
        let codecID = CodecID(rawValue: try description.readPluginInteger(UInt8.self))
        let name = try description.readLengthPrefixedStringChecked()
        return LoadedCodec(id: codecID, name: name, port: port, library: table.path, pluginID: id)
    }

    func makeDiscovery(settings: PluginSettings) throws -> any DiscoveryProvider {
        guard kind == .discovery else { throw CohortError(.badConfiguration, "plugin '\(id)' is a \(kind) plugin, not a discovery plugin") }
        let events = DiscoveryEvents(logger: settings.logger)
        let port = try table.create(id: id, settings: settings, host: events)
        var description = try port.requestNow(PluginOperation.describe)
        return LoadedDiscovery(name: try description.readLengthPrefixedStringChecked(), port: port, events: events, library: table.path, pluginID: id)
    }
}

/// What a codec instance may call on the host: only logging.
final class LogOnlyHost: PluginPortHandler {
    let logger: Logger
    init(logger: Logger) { self.logger = logger }
    func portReleased() {}
    func handle(operation: UInt32, bytes: ByteBuffer, reply: PluginReply?) {
        if operation == PluginOperation.log { logForwardedRecord(bytes, on: logger) }
        reply?.fail(CohortError(.internal, "the host does not answer operation \(operation) here"))
    }
}

// MARK: - codec

/// A codec in a loaded library. Messages cross as ``PluginValue`` trees: encoding builds the tree
/// here and the plugin writes its format; decoding runs the other way.
final class LoadedCodec: MessageCodec, LoadedPluginPart {
    let id: CodecID
    let name: String
    let port: RemotePort
    let library: String
    let pluginID: String

    init(id: CodecID, name: String, port: RemotePort, library: String, pluginID: String) {
        self.id = id
        self.name = name
        self.port = port
        self.library = library
        self.pluginID = pluginID
    }

    func encode<Value: Encodable>(_ value: Value, into buffer: inout ByteBuffer) throws {
        do {
            var tree = ByteBuffer()
            try PluginValueEncoder().encode(value).write(to: &tree)
            var encoded = try port.requestNow(PluginOperation.encode, tree)
            buffer.writeBuffer(&encoded)
        } catch {
            throw codecFailure("encode \(Value.self)", error)
        }
    }

    func decode<Value: Decodable>(_ type: Value.Type, from buffer: inout ByteBuffer) throws -> Value {
        do {
            var answer = try port.requestNow(PluginOperation.decode, buffer)
            let consumed = Int(try answer.readPluginInteger(UInt32.self))
            guard consumed <= buffer.readableBytes else {
                throw CohortError(.codecFailure, "codec '\(name)' claims to have read \(consumed) of \(buffer.readableBytes) bytes")
            }
            let tree = try PluginValue.read(from: &answer)
            let value = try PluginValueDecoder().decode(type, from: tree)
            buffer.moveReaderIndex(forwardBy: consumed)
            return value
        } catch {
            throw codecFailure("decode \(Value.self)", error)
        }
    }

    private func codecFailure(_ what: String, _ error: any Error) -> CohortError {
        if let error = error as? CohortError, error.code == .codecFailure { return error }
        return CohortError(.codecFailure, "codec '\(name)' (\(library)) cannot \(what): \(error)", cause: error)
    }
}

// MARK: - discovery

/// Receives what a loaded discovery provider reports.
final class DiscoveryEvents: PluginPortHandler {
    let logger: Logger
    private let reporters = NIOLockedValueBox<[UInt64: @Sendable (DiscoveryEvent) -> Void]>([:])
    private let nextRun = NIOLockedValueBox<UInt64>(0)

    init(logger: Logger) { self.logger = logger }

    func register(_ report: @escaping @Sendable (DiscoveryEvent) -> Void) -> UInt64 {
        let id = nextRun.withLockedValue { value -> UInt64 in
            value += 1
            return value
        }
        reporters.withLockedValue { $0[id] = report }
        return id
    }

    func unregister(_ id: UInt64) { reporters.withLockedValue { _ = $0.removeValue(forKey: id) } }

    func portReleased() {}

    func handle(operation: UInt32, bytes: ByteBuffer, reply: PluginReply?) {
        var bytes = bytes
        switch operation {
        case PluginOperation.log:
            logForwardedRecord(bytes, on: logger)
            reply?.succeed()
        case PluginOperation.discovered:
            do {
                let event = try bytes.readPluginDiscoveryEvent()
                for report in reporters.withLockedValue({ Array($0.values) }) { report(event) }
                reply?.succeed()
            } catch {
                logger.warning("a discovery plugin reported something unreadable: \(error)")
                reply?.fail(error)
            }
        default:
            reply?.fail(CohortError(.internal, "the host does not answer operation \(operation) for discovery"))
        }
    }
}

/// A discovery provider in a loaded library.
final class LoadedDiscovery: DiscoveryProvider, LoadedPluginPart {
    let name: String
    let port: RemotePort
    let events: DiscoveryEvents
    let library: String
    let pluginID: String

    init(name: String, port: RemotePort, events: DiscoveryEvents, library: String, pluginID: String) {
        self.name = name
        self.port = port
        self.events = events
        self.library = library
        self.pluginID = pluginID
    }

    func run(local: Member, report: @escaping @Sendable (DiscoveryEvent) -> Void) async throws {
        let runID = events.register(report)
        defer { events.unregister(runID) }
        var request = ByteBuffer()
        request.writeInteger(runID)
        request.writePlugin(local)
        var cancel = ByteBuffer()
        cancel.writeInteger(runID)
        try await withTaskCancellationHandler {
            _ = try await port.request(PluginOperation.run, request)
        } onCancel: { [port, cancel] in
            port.tell(PluginOperation.cancelRun, cancel)
        }
        try Task.checkCancellation()
    }

    func leave(local: Member) async {
        var request = ByteBuffer()
        request.writePlugin(local)
        _ = try? await port.request(PluginOperation.discoveryLeave, request)
    }
}

// MARK: - transport

/// Receives a loaded transport's events and hands them to the node's delegate.
final class TransportEvents: PluginPortHandler {
    let logger: Logger
    private let delegateBox = NIOLockedValueBox<(any TransportDelegate)?>(nil)

    init(logger: Logger) { self.logger = logger }

    var delegate: (any TransportDelegate)? {
        get { delegateBox.withLockedValue { $0 } }
        set { delegateBox.withLockedValue { $0 = newValue } }
    }

    func portReleased() {}

    func handle(operation: UInt32, bytes: ByteBuffer, reply: PluginReply?) {
        var bytes = bytes
        if operation == PluginOperation.log {
            logForwardedRecord(bytes, on: logger)
            reply?.succeed()
            return
        }
        guard let delegate else {
            reply?.fail(CohortError(.notRunning, "the transport is not started"))
            return
        }
        do {
            switch operation {
            case PluginOperation.accepted: delegate.transport(didAccept: try bytes.readPluginMember())
            case PluginOperation.heard: delegate.transport(heardFrom: try bytes.readPluginMember())
            case PluginOperation.activity: delegate.transport(sawActivityFrom: try bytes.readPluginMember())
            case PluginOperation.lostConnection:
                let member = try bytes.readPluginMember()
                delegate.transport(lostConnectionTo: member, reason: try bytes.readLengthPrefixedStringChecked())
            case PluginOperation.memberLeft: delegate.transport(memberLeft: try bytes.readPluginMember())
            case PluginOperation.asyncFailed:
                let count = try bytes.readPluginInteger(Int64.self)
                let member = try bytes.readPluginMember()
                let reason = try bytes.readLengthPrefixedStringChecked()
                delegate.transport(asyncMessagesFailed: Int(clamping: count), to: member, reason: reason)
            case PluginOperation.received:
                let message = try bytes.readPluginInbound()
                Task {
                    let result = await delegate.transport(received: message)
                    var out = ByteBuffer()
                    out.writePlugin(result)
                    reply?.succeed(out)
                }
                return
            default:
                throw CohortError(.internal, "the host does not answer operation \(operation) for a transport")
            }
            reply?.succeed()
        } catch {
            logger.warning("a transport plugin sent an unreadable event: \(error)")
            reply?.fail(error)
        }
    }
}

/// A transport in a loaded library. Each call crosses the boundary as bytes: a send copies the
/// payload once into the plugin, whatever the number of members.
final class LoadedTransport: Transport, LoadedPluginPart {
    let port: RemotePort
    let events: TransportEvents
    let library: String
    let pluginID: String

    init(port: RemotePort, events: TransportEvents, library: String, pluginID: String) {
        self.port = port
        self.events = events
        self.library = library
        self.pluginID = pluginID
    }

    func start(local: Member, delegate: any TransportDelegate) async throws -> Endpoint {
        events.delegate = delegate
        var request = ByteBuffer()
        request.writePlugin(local)
        var answer = try await port.request(PluginOperation.start, request)
        return try answer.readPluginEndpoint()
    }

    func handshake(with endpoint: Endpoint, timeout: Duration) async throws -> Member {
        var request = ByteBuffer()
        request.writePlugin(endpoint)
        request.writePlugin(timeout)
        var answer = try await port.request(PluginOperation.handshake, request)
        return try answer.readPluginMember()
    }

    func send(_ message: OutboundMessage, to members: [Member]) async -> SendReport {
        var request = ByteBuffer()
        request.reserveCapacity(message.payload.readableBytes + 64 + 64 * members.count)
        request.writePlugin(message)
        request.writePlugin(members)
        do {
            var answer = try await port.request(PluginOperation.send, request)
            return try answer.readPluginReport()
        } catch {
            return SendReport(outcomes: members.map { ($0.id, .connectionFailed("transport plugin: \(error)")) })
        }
    }

    func heartbeat(to members: [Member]) {
        var request = ByteBuffer()
        request.writePlugin(members)
        port.tell(PluginOperation.heartbeat, request)
    }

    func probe(_ member: Member, timeout: Duration) async -> FailureDetectorState.ProbeResult {
        var request = ByteBuffer()
        request.writePlugin(member)
        request.writePlugin(timeout)
        guard var answer = try? await port.request(PluginOperation.probe, request) else { return .timedOut }
        return (try? answer.readPluginProbeResult()) ?? .timedOut
    }

    func leave(notifying members: [Member]) async {
        var request = ByteBuffer()
        request.writePlugin(members)
        _ = try? await port.request(PluginOperation.leave, request)
    }

    func forget(_ member: Member) {
        var request = ByteBuffer()
        request.writePlugin(member)
        port.tell(PluginOperation.forget, request)
    }

    func shutdown() async {
        _ = try? await port.request(PluginOperation.shutdown)
    }
}
