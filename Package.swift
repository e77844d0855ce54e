// swift-tools-version: 6.1
import PackageDescription

// One package, resolvable by URL and version (no `path:` dependency). Every library product is an
// ordinary, statically linked library. Run-time plugins talk to their host through a C boundary
// (CCohortPluginABI + CohortPluginSDK), so host and plugin share no Swift library and each may
// carry its own copy of NIO and the core. See docs/adr/0007-plugin-boundary-in-c.md.
//
// Layering, enforced by the target dependencies below:
//   CohortCore      vocabulary, plugin protocols, errors, pure state machines (NIOCore + Logging)
//   plugins         import CohortCore only (plus the libraries they implement with)
//   CohortPluginSDK the C boundary: export a plugin from a shared library, adapt a loaded one
//   Cohort          the channel, membership, interceptors, configuration, loader; the default host
//                   links every built-in plugin
//   CohortSessions  session managers and replicated maps over a GroupChannel
//   CohortSessions  also ClusterNode (channel + manager + readiness + hand-off), framework-neutral
//   CohortHummingbird  persist driver, session middleware, admin routes
//   CohortVapor     Vapor's session driver, lifecycle handler, admin routes — only with the
//                   `Vapor` trait (off by default: a package that does not enable it never
//                   resolves vapor): `swift build --traits Vapor`, or in a consumer
//                   `.package(url: …, from: "0.1.0", traits: ["Vapor"])`

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]
// Modules that conform to Hummingbird's protocols keep the classic isolation rules (Hummingbird
// is compiled without NonisolatedNonsendingByDefault).
let hummingbirdSwiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let nioCore: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
let nioPosix: Target.Dependency = .product(name: "NIOPosix", package: "swift-nio")
let nioConcurrencyHelpers: Target.Dependency = .product(name: "NIOConcurrencyHelpers", package: "swift-nio")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let metrics: Target.Dependency = .product(name: "Metrics", package: "swift-metrics")
let serviceLifecycle: Target.Dependency = .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let hummingbird: Target.Dependency = .product(name: "Hummingbird", package: "hummingbird")
let prometheus: Target.Dependency = .product(name: "Prometheus", package: "swift-prometheus")
let deque: Target.Dependency = .product(name: "DequeModule", package: "swift-collections")
let tracing: Target.Dependency = .product(name: "Tracing", package: "swift-distributed-tracing")
/// Tests only: swift-distributed-tracing's in-memory tracer and swift-metrics' test factory.
let inMemoryTracing: Target.Dependency = .product(name: "InMemoryTracing", package: "swift-distributed-tracing")
let metricsTestKit: Target.Dependency = .product(name: "MetricsTestKit", package: "swift-metrics")
/// Vapor, only when the `Vapor` trait is on (every source of the Vapor targets is under `#if Vapor`).
let vapor: Target.Dependency = .product(name: "Vapor", package: "vapor", condition: .when(traits: ["Vapor"]))
let crypto: Target.Dependency = .product(name: "Crypto", package: "swift-crypto")

/// A built-in plugin: its module (linked into `Cohort`, the default host) and what it needs.
struct BuiltInPlugin {
    var name: String
    var dependencies: [Target.Dependency]
}

let builtInPlugins = [
    BuiltInPlugin(name: "CohortTransportTCP", dependencies: [nioCore, nioPosix, nioConcurrencyHelpers, logging, metrics, deque, crypto, .product(name: "NIOSSL", package: "swift-nio-ssl")]),
    BuiltInPlugin(name: "CohortCodecBinary", dependencies: [nioCore]),
    BuiltInPlugin(name: "CohortCodecJSON", dependencies: [nioCore]),
    BuiltInPlugin(name: "CohortDiscoveryStatic", dependencies: []),
    BuiltInPlugin(name: "CohortDiscoveryKubernetes", dependencies: [
        nioCore, nioConcurrencyHelpers, logging,
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
    ]),
    BuiltInPlugin(name: "CohortDiscoveryDNS", dependencies: [nioConcurrencyHelpers, logging]),
    BuiltInPlugin(name: "CohortDiscoveryMulticast", dependencies: [nioCore, nioPosix, nioConcurrencyHelpers, logging, metrics, crypto]),
]

let package = Package(
    name: "cohort",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Cohort", targets: ["Cohort"]),
        .library(name: "CohortCore", targets: ["CohortCore"]),
        .library(name: "CohortSessions", targets: ["CohortSessions"]),
        .library(name: "CohortHummingbird", targets: ["CohortHummingbird"]),
        // Vapor 4 integration: builds (and links Vapor) only with the `Vapor` trait.
        .library(name: "CohortVapor", targets: ["CohortVapor"]),
        .library(name: "CohortTestKit", targets: ["CohortTestKit"]),
        // For plugin authors: export a plugin from a shared library of their own package.
        .library(name: "CohortPluginSDK", targets: ["CohortPluginSDK"]),
        .executable(name: "cohort", targets: ["CohortCLI"]),
        // The Vapor sample app (an empty program without the `Vapor` trait).
        .executable(name: "cohort-vapor-sample", targets: ["CohortVaporSample"]),
    ]
        // Each built-in plugin as a module of its own…
        + builtInPlugins.map { .library(name: $0.name, targets: [$0.name]) }
        // …and as a shared library that `cohort node --plugin` can load.
        + builtInPlugins.map { .library(name: "\($0.name)Plugin", type: .dynamic, targets: ["\($0.name)Plugin"]) },
    traits: [
        // The Vapor integration (CohortVapor, its tests and sample app). Off by default so that
        // Hummingbird users never build, or even resolve, Vapor.
        .trait(name: "Vapor", description: "Build CohortVapor, the Vapor 4 integration (session driver, lifecycle, admin routes)."),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        // Tests only: docs/hummingbird.md's hummingbird-auth example is compiled and run by a test.
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        // Only with the `Vapor` trait (see `vapor` above).
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
        // The Compression interceptor (deflate/gzip over zlib).
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
    ],
    targets: [
        .target(
            name: "CohortCore",
            dependencies: [nioCore, nioConcurrencyHelpers, logging],
            swiftSettings: swiftSettings
        ),
        // The C boundary between a host and a plugin library: plain C types and function pointers.
        .target(name: "CCohortPluginABI"),
        .target(
            name: "CohortPluginSDK",
            dependencies: ["CohortCore", "CCohortPluginABI", nioCore, nioConcurrencyHelpers, logging],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Cohort",
            dependencies: ["CohortCore", "CohortPluginSDK", "CCohortPluginABI", nioCore, nioConcurrencyHelpers, logging, metrics, serviceLifecycle, tracing,
                           .product(name: "CompressNIO", package: "compress-nio")]
                + builtInPlugins.map { Target.Dependency(stringLiteral: $0.name) },
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CohortSessions",
            dependencies: ["Cohort", "CohortCore", nioCore, nioConcurrencyHelpers, logging, metrics, serviceLifecycle, tracing],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CohortHummingbird",
            dependencies: [
                "CohortSessions", "Cohort", "CohortCore", hummingbird, prometheus, nioCore, nioConcurrencyHelpers, logging, metrics, serviceLifecycle,
                .product(name: "NIOFoundationEssentialsCompat", package: "swift-nio"),
            ],
            swiftSettings: hummingbirdSwiftSettings
        ),
        // Vapor's protocols are compiled without NonisolatedNonsendingByDefault, like Hummingbird's.
        .target(
            name: "CohortVapor",
            dependencies: [
                "CohortSessions", "Cohort", "CohortCore", vapor, nioCore, nioConcurrencyHelpers, logging, serviceLifecycle,
            ],
            swiftSettings: hummingbirdSwiftSettings
        ),
        .executableTarget(
            name: "CohortVaporSample",
            dependencies: ["CohortVapor", "CohortSessions", "Cohort", "CohortCore", vapor, logging],
            swiftSettings: hummingbirdSwiftSettings
        ),
        .target(
            name: "CohortTestKit",
            dependencies: [
                "Cohort", "CohortCore", "CohortTransportTCP", "CohortCodecBinary", "CohortCodecJSON", "CohortDiscoveryStatic",
                nioCore, nioConcurrencyHelpers, logging, deque,
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "CohortCLI",
            dependencies: [
                "Cohort", "CohortCore", "CohortSessions", "CohortHummingbird", hummingbird, prometheus,
                nioCore, logging, metrics, serviceLifecycle,
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOFoundationEssentialsCompat", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // The fault-injection harness's HTTP clients (`cohort chaos`).
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CohortPluginTests",
            dependencies: ["Cohort", "CohortCore", "CohortPluginSDK", "CCohortPluginABI", "CohortTestKit", "CohortCodecBinary", "CohortCodecJSON", "CohortDiscoveryStatic", "CohortTransportTCP", nioCore, nioConcurrencyHelpers, logging],
            // Fixtures/ holds C sources the tests compile into plugin libraries themselves.
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CohortHummingbirdTests",
            dependencies: [
                "CohortHummingbird", "CohortSessions", "Cohort", "CohortCore", "CohortTestKit", "CohortCodecBinary", "CohortDiscoveryStatic", "CohortTransportTCP",
                hummingbird, .product(name: "HummingbirdAuth", package: "hummingbird-auth"), nioCore, nioConcurrencyHelpers, logging, serviceLifecycle,
            ],
            swiftSettings: hummingbirdSwiftSettings
        ),
        // Runs only with the `Vapor` trait: `swift test --traits Vapor --filter CohortVaporTests`.
        .testTarget(
            name: "CohortVaporTests",
            dependencies: [
                "CohortVapor", "CohortSessions", "Cohort", "CohortCore", "CohortTestKit", "CohortCodecBinary", "CohortDiscoveryStatic", "CohortTransportTCP",
                vapor, nioCore, nioConcurrencyHelpers, logging, serviceLifecycle,
            ],
            swiftSettings: hummingbirdSwiftSettings
        ),
        .testTarget(
            name: "CohortSessionsTests",
            dependencies: ["CohortSessions", "Cohort", "CohortCore", "CohortTestKit", "CohortCodecJSON", "CohortCodecBinary", "CohortTransportTCP", "CohortDiscoveryStatic", nioCore, nioConcurrencyHelpers, logging, metrics, serviceLifecycle, tracing, inMemoryTracing],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CohortCLITests",
            dependencies: ["CohortCLI", "CohortTestKit", "Cohort", "CohortCore"],
            swiftSettings: swiftSettings
        ),
        // Multicast discovery and membership hardening, over loopback and in network namespaces
        // (scripts/netns; those tests need root and are skipped with a reason elsewhere).
        .testTarget(
            name: "CohortNetworkTests",
            dependencies: [
                "Cohort", "CohortCore", "CohortDiscoveryMulticast", "CohortHummingbird", "CohortSessions", "CohortTestKit",
                "CohortTransportTCP", "CohortCodecBinary", "CohortDiscoveryStatic",
                hummingbird, nioCore, nioPosix, nioConcurrencyHelpers, logging,
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CohortCloudDiscoveryTests",
            dependencies: [
                "Cohort", "CohortCore", "CohortTestKit", "CohortDiscoveryKubernetes", "CohortDiscoveryDNS",
                nioCore, nioPosix, nioConcurrencyHelpers, logging, metrics,
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CohortTests",
            dependencies: [
                "Cohort", "CohortCore", "CohortTestKit", "CohortTransportTCP", "CohortCodecBinary", "CohortCodecJSON", "CohortDiscoveryStatic",
                nioCore, nioPosix, nioConcurrencyHelpers, logging, deque, metrics, tracing, metricsTestKit, inMemoryTracing,
                // EmbeddedChannel / NIOAsyncTestingChannel: the TCP transport's handlers without sockets.
                .product(name: "NIOEmbedded", package: "swift-nio"),
                // The Throughput interceptor's metrics, recorded by a test factory.
                metrics, .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
        + builtInPlugins.map {
            .target(name: $0.name, dependencies: ["CohortCore"] + $0.dependencies, path: "Plugins/\($0.name)/Sources", swiftSettings: swiftSettings)
        }
        + builtInPlugins.map {
            // The C entry point, only in the shared library: every plugin library exports the
            // same symbol name, so entry modules are never linked into one executable together.
            .target(
                name: "\($0.name)Plugin",
                dependencies: ["CohortPluginSDK", Target.Dependency(stringLiteral: $0.name)],
                path: "Plugins/\($0.name)/Entry",
                swiftSettings: swiftSettings
            )
        }
)
