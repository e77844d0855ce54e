// swift-tools-version: 6.1
// The Cohort core, kept in a package of its own so that it can be ONE shared library
// (libCohortCore.so) used by the host and by every plugin loaded at run time.
// SwiftPM links a target of the same package statically, so a core in the root package would
// be copied into every plugin .so (casts across the boundary fail, globals duplicate).
// See docs/adr/0001-core-as-shared-library.md.
//
// Rule: every library whose types or global state cross the plugin boundary (NIOCore, NIOPosix,
// Logging, Metrics, ServiceLifecycle) is linked ONLY here and re-exported. Hosts and plugins never
// list those packages as their own dependencies.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "CohortCore",
    products: [
        .library(name: "CohortCore", type: .dynamic, targets: ["CohortCore", "CohortNIO", "CohortHTTP"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        .target(
            name: "CohortCore",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Socket-level NIO, re-exported so that the TCP transport (built in or loaded as a .so)
        // shares the one copy that lives in libCohortCore.so.
        .target(
            name: "CohortNIO",
            dependencies: [
                "CohortCore",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The HTTP server (Hummingbird), the HTTP client (AsyncHTTPClient, for cloud discovery),
        // TLS (NIOSSL) and the Prometheus exporter, re-exported for the same reason: they all sit
        // on NIO, Logging, Metrics and ServiceLifecycle, whose one copy lives here.
        .target(
            name: "CohortHTTP",
            dependencies: [
                "CohortNIO",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
