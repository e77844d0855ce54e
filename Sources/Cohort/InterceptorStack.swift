import CohortCore
import Logging
import Metrics

/// The interceptor names a configuration may use, the order they must keep, and how the
/// channel builds its stages from ``ClusterConfiguration/interceptors``.
///
/// Built-in names, in the recommended order (top, nearest the application, first):
///
/// | Name | Stage | Placement rule |
/// |---|---|---|
/// | `throughput` | ``Throughput`` | anywhere (at the top it counts messages as the application sees them) |
/// | `dispatch` | ``MessageDispatch`` | anywhere |
/// | `compression` | ``Compression`` | above `order` and `fragmentation` |
/// | `order` | ``Order`` | below `compression`, above `fragmentation` |
/// | `fragmentation` | ``Fragmentation`` | below `compression` and `order` |
/// | `failureDetector` | ``TcpFailureDetector`` | anywhere |
/// | `domainFilter` | ``DomainFilter`` | below `compression`, `order` and `fragmentation` |
///
/// Why: the message is compressed whole, once, and the decompression cap applies to the whole
/// message (compression above fragmentation); the order header stays outside the compressed
/// bytes, so a receiver without compression configured still finds it, and a message gets one
/// sequence number, not one per fragment (order between them); other domains' messages are
/// refused before they are reassembled, held or decompressed (domain filter lowest). Any other
/// name must be an interceptor plugin in the channel's registry (`interceptor.<name>`, or the
/// bare name); plugins may sit anywhere. A name may appear once.
public enum InterceptorStack {
    /// The built-in names, in the recommended order.
    public static let builtInNames = ["throughput", "dispatch", "compression", "order", "fragmentation", "failureDetector", "domainFilter"]

    /// The full recommended stack.
    public static let recommended = builtInNames

    /// The rank of a name with a placement rule (lower ranks sit higher); nil: anywhere.
    static func rank(_ name: String) -> Int? {
        switch name {
        case "compression": return 1
        case "order": return 2
        case "fragmentation": return 3
        case "domainFilter": return 9
        default: return nil
        }
    }

    /// Checks names and order.
    ///
    /// - Parameters:
    ///   - names: the configured list, top first.
    ///   - plugins: whether a name that is not built in is a known interceptor plugin; nil
    ///     accepts any such name (the registry is not known yet; the channel checks again).
    /// - Throws: ``CohortError/Code/badConfiguration`` naming the wrong entry, the valid names
    ///   and the right order.
    public static func validate(_ names: [String], plugins: ((String) -> Bool)? = { _ in false }) throws {
        var seen: Set<String> = []
        for name in names {
            guard seen.insert(name).inserted else {
                throw CohortError(.badConfiguration, "configuration key 'interceptors': '\(name)' is listed twice; each stage may appear once")
            }
            if !builtInNames.contains(name), let plugins, !plugins(name) {
                throw CohortError(.badConfiguration, "configuration key 'interceptors': unknown interceptor '\(name)'; valid names: \(builtInNames.joined(separator: ", ")), or the id of a loaded interceptor plugin (list them with `cohort plugins`)")
            }
        }
        let ranked = names.compactMap { name in rank(name).map { (name, $0) } }
        for (upper, lower) in zip(ranked, ranked.dropFirst()) where upper.1 > lower.1 {
            let right = ranked.sorted { $0.1 < $1.1 }.map(\.0)
            throw CohortError(.badConfiguration, "configuration key 'interceptors': '\(upper.0)' must sit below '\(lower.0)', not above it; keep \(right.joined(separator: " above ")) (top first), e.g. \(recommended.joined(separator: ", "))")
        }
    }

    /// What building a stage may use.
    struct Environment {
        var configuration: ClusterConfiguration
        var local: MemberID
        var clock: any CohortClock
        var logger: Logger
        var accounting: DispatchAccounting
        var registry: PluginRegistry?
        var queueDepth: (@Sendable (MemberID) -> Int?)?
        /// Where the stages' metrics go (nil: the process's).
        var metricsFactory: (any MetricsFactory)? = nil
    }

    /// Builds the configured stages, top first.
    static func make(_ names: [String], environment: Environment) throws -> [any Interceptor] {
        let registry = environment.registry
        try validate(names, plugins: { name in (try? registry?.factory(name, kind: .interceptor)) != nil })
        let configuration = environment.configuration
        var stages: [any Interceptor] = []
        for name in names {
            switch name {
            case "throughput":
                stages.append(Throughput(clock: environment.clock, queueDepth: environment.queueDepth, logger: environment.logger))
            case "dispatch":
                stages.append(MessageDispatch(settings: configuration.dispatch, accounting: environment.accounting))
            case "compression":
                stages.append(Compression(settings: configuration.compression, logger: environment.logger))
            case "order":
                stages.append(Order(settings: configuration.order, local: environment.local, clock: environment.clock, logger: environment.logger))
            case "fragmentation":
                stages.append(Fragmentation(settings: configuration.fragmentation, clock: environment.clock, logger: environment.logger))
            case "failureDetector":
                stages.append(TcpFailureDetector(settings: configuration.failureDetector, clock: environment.clock, metricsFactory: environment.metricsFactory))
            case "domainFilter":
                stages.append(DomainFilter(domain: configuration.domain, logger: environment.logger))
            default:
                guard let registry else {
                    throw CohortError(.badConfiguration, "configuration key 'interceptors': unknown interceptor '\(name)'; valid names: \(builtInNames.joined(separator: ", ")), or the id of a loaded interceptor plugin")
                }
                let settings = PluginSettings(values: configuration.interceptorSettings[name] ?? [:], transport: configuration.wire, logger: environment.logger)
                stages.append(try registry.factory(name, kind: .interceptor).makeInterceptor(settings: settings))
            }
        }
        return stages
    }
}
