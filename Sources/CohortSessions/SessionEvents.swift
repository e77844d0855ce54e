import Cohort
import Synchronization

/// Something that happened to a session, for listeners.
public enum SessionEvent: Sendable, Equatable, CustomStringConvertible {
    /// A session was created.
    case created(id: String, origin: ChangeOrigin)
    /// A session ended: invalidated (``RemovalReason/removed``), idle or past its deadline
    /// (``RemovalReason/expired``), or every copy was lost (``RemovalReason/lost``).
    case destroyed(id: String, reason: RemovalReason, origin: ChangeOrigin)
    /// An attribute was set (`removed == false`) or removed.
    case attributeChanged(id: String, name: String, removed: Bool, origin: ChangeOrigin)
    /// A session got a new id.
    case idChanged(from: String, to: String, origin: ChangeOrigin)
    /// Anti-entropy found attributes of a session written on two nodes from the same version
    /// (while they could not see each other): the higher stamp won on every node. `attributes`
    /// names them (`@principal`, `@maxInactive`, `@absoluteExpiry` for those fields).
    case conflict(id: String, attributes: [String])

    /// The session the event is about (the new id for ``idChanged(from:to:origin:)``).
    public var sessionID: String {
        switch self {
        case .created(let id, _), .destroyed(let id, _, _), .attributeChanged(let id, _, _, _), .conflict(let id, _): return id
        case .idChanged(_, let to, _): return to
        }
    }

    /// Whether the change was made here or replicated from another node.
    public var origin: ChangeOrigin {
        switch self {
        case .created(_, let origin), .destroyed(_, _, let origin), .attributeChanged(_, _, _, let origin),
            .idChanged(_, _, let origin):
            return origin
        case .conflict:
            return .replicated
        }
    }

    public var description: String {
        switch self {
        case .created(let id, let origin): return "created \(id) (\(origin))"
        case .destroyed(let id, let reason, let origin): return "destroyed \(id): \(reason) (\(origin))"
        case .attributeChanged(let id, let name, let removed, let origin):
            return "\(removed ? "removed" : "set") \(id).\(name) (\(origin))"
        case .idChanged(let from, let to, let origin): return "id \(from) -> \(to) (\(origin))"
        case .conflict(let id, let attributes): return "conflict \(id): \(attributes.joined(separator: ", "))"
        }
    }
}

/// Identifies a listener, to remove it.
public struct ListenerToken: Hashable, Sendable {
    let id: Int
}

/// Identifies a session listener, to remove it.
public typealias SessionListenerToken = ListenerToken

/// The listeners of one manager.
typealias SessionListeners = EventHub<SessionEvent>

/// Listeners and event streams of one manager or map.
final class EventHub<Event: Sendable>: Sendable {
    private struct Registry {
        var next = 0
        var listeners: [Int: @Sendable (Event) -> Void] = [:]
        var streams: [Int: AsyncStream<Event>.Continuation] = [:]
    }

    private let registry = Mutex(Registry())

    func add(_ listener: @escaping @Sendable (Event) -> Void) -> ListenerToken {
        registry.withLock { registry in
            registry.next += 1
            registry.listeners[registry.next] = listener
            return ListenerToken(id: registry.next)
        }
    }

    func remove(_ token: ListenerToken) {
        _ = registry.withLock { $0.listeners.removeValue(forKey: token.id) }
    }

    func stream() -> AsyncStream<Event> {
        let (stream, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(65_536))
        let id = registry.withLock { registry in
            registry.next += 1
            registry.streams[registry.next] = continuation
            return registry.next
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.registry.withLock { $0.streams.removeValue(forKey: id) }
        }
        return stream
    }

    var isEmpty: Bool { registry.withLock { $0.listeners.isEmpty && $0.streams.isEmpty } }

    func emit(_ events: [Event]) {
        guard !events.isEmpty else { return }
        let (listeners, streams) = registry.withLock { (Array($0.listeners.values), Array($0.streams.values)) }
        for event in events {
            for listener in listeners { listener(event) }
            for stream in streams { stream.yield(event) }
        }
    }

    func finish() {
        let streams = registry.withLock { registry in
            defer { registry.streams.removeAll() }
            return Array(registry.streams.values)
        }
        for stream in streams { stream.finish() }
    }
}

extension SessionEvent {
    /// The session events of a store event.
    static func from(_ event: ReplicaEvent<SessionRecord>) -> [SessionEvent] {
        switch event {
        case .created(let key, let record, let origin):
            var events: [SessionEvent] = [.created(id: key, origin: origin)]
            for name in record.liveAttributes.keys.sorted() {
                events.append(.attributeChanged(id: key, name: name, removed: false, origin: origin))
            }
            return events
        case .updated(let key, _, let change, let origin):
            guard let change else { return [] }
            return change.attributes.keys.sorted().map { name in
                .attributeChanged(id: key, name: name, removed: change.attributes[name]! == nil, origin: origin)
            }
        case .removed(let key, _, let reason, let origin):
            return [.destroyed(id: key, reason: reason, origin: origin)]
        case .renamed(let from, let to, _, let origin):
            return [.idChanged(from: from, to: to, origin: origin)]
        case .conflict(let key, let fields, _):
            return [.conflict(id: key, attributes: fields)]
        }
    }
}
