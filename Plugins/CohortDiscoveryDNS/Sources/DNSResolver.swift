import CohortCore
import Foundation
import NIOConcurrencyHelpers

/// Looks a host name up. Inject your own in tests; ``SystemDNSResolver`` is the real one.
public protocol DNSResolver: Sendable {
    /// The IP addresses (IPv4 and IPv6 literals) of a name.
    ///
    /// - Parameter name: a host name, such as a headless Service's `svc.ns.svc.cluster.local`.
    /// - Returns: the addresses, possibly empty.
    /// - Throws: any error when the name cannot be resolved (the provider keeps its last view).
    func resolve(_ name: String) async throws -> [String]
}

/// Which address families to ask for.
public enum DNSAddressFamily: String, Sendable, CaseIterable {
    /// A and AAAA records.
    case any
    /// A records only.
    case ipv4
    /// AAAA records only.
    case ipv6
}

/// The system resolver (`getaddrinfo`, so `/etc/hosts`, the pod's `resolv.conf` search domains and
/// `ndots` all apply).
///
/// `getaddrinfo` blocks, so each lookup runs on a dedicated thread, never on Swift's cooperative
/// pool. A lookup whose task is cancelled returns at once; its thread finishes in the background
/// when the system call does.
public struct SystemDNSResolver: DNSResolver {
    /// The families asked for.
    public var family: DNSAddressFamily

    /// Creates the resolver.
    public init(family: DNSAddressFamily = .any) {
        self.family = family
    }

    public func resolve(_ name: String) async throws -> [String] {
        let pending = PendingLookup()
        let family = self.family
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                guard pending.wait(continuation) else { return }
                let thread = Thread {
                    pending.finish(Result { try Self.lookup(name, family: family) })
                }
                thread.name = "cohort-dns"
                thread.start()
            }
        } onCancel: {
            pending.finish(.failure(CancellationError()))
        }
    }

    /// The blocking lookup.
    static func lookup(_ name: String, family: DNSAddressFamily) throws -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        switch family {
        case .any: hints.ai_family = AF_UNSPEC
        case .ipv4: hints.ai_family = AF_INET
        case .ipv6: hints.ai_family = AF_INET6
        }
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(name, nil, &hints, &list)
        guard status == 0 else {
            let reason = String(cString: gai_strerror(status))
            throw CohortError(.connectionFailed, "cannot resolve '\(name)': \(reason)")
        }
        defer { freeaddrinfo(list) }
        var addresses: [String] = []
        var next = list
        var guardCount = 0
        while let entry = next, guardCount < 4096 {
            guardCount += 1
            if let text = Self.text(of: entry.pointee), !addresses.contains(text) { addresses.append(text) }
            next = entry.pointee.ai_next
        }
        return addresses
    }

    private static func text(of entry: addrinfo) -> String? {
        guard let address = entry.ai_addr else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch entry.ai_family {
        case AF_INET:
            var ip = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            guard inet_ntop(AF_INET, &ip, &buffer, socklen_t(buffer.count)) != nil else { return nil }
        case AF_INET6:
            var ip = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            guard inet_ntop(AF_INET6, &ip, &buffer, socklen_t(buffer.count)) != nil else { return nil }
        default:
            return nil
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A continuation resumed exactly once: by the lookup thread, or by cancellation, whichever
/// comes first.
final class PendingLookup: Sendable {
    private enum State {
        case idle
        case waiting(CheckedContinuation<[String], any Error>)
        case finished(Result<[String], any Error>)
        case done
    }

    private let state = NIOLockedValueBox<State>(.idle)

    /// Stores the continuation; returns false (and resumes it) when the result is already there.
    func wait(_ continuation: CheckedContinuation<[String], any Error>) -> Bool {
        let early: Result<[String], any Error>? = state.withLockedValue { state in
            if case .finished(let result) = state {
                state = .done
                return result
            }
            state = .waiting(continuation)
            return nil
        }
        if let early {
            continuation.resume(with: early)
            return false
        }
        return true
    }

    /// Delivers a result (the first one wins).
    func finish(_ result: Result<[String], any Error>) {
        let waiting: CheckedContinuation<[String], any Error>? = state.withLockedValue { state in
            switch state {
            case .idle:
                state = .finished(result)
                return nil
            case .waiting(let continuation):
                state = .done
                return continuation
            case .finished, .done:
                return nil
            }
        }
        waiting?.resume(with: result)
    }
}
