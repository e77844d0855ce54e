// swift-tools-version: 6.1
import PackageDescription

// NIO, Logging, Metrics and ServiceLifecycle come ONLY through the CohortCore product (the shared
// library libCohortCore.so re-exports them). Listing them here again would link a second copy
// into the host or a plugin. See docs/adr/0001-core-as-shared-library.md.
let core: Target.Dependency = .product(name: "CohortCore", package: "CohortCore")

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
]

/// Built-in plugins: each is a module linked into the default product, and also shipped as its own
/// shared library (`lib<Name>Plugin.so`) that `cohort node --plugin` can load.
let builtInPlugins = ["CohortTransportTCP", "CohortCodecBinary", "CohortCodecJSON", "CohortDiscoveryStatic", "CohortDiscoveryKubernetes", "CohortDiscoveryDNS", "CohortDiscoveryMulticast"]

let package = Package(
    name: "cohort",
    products: [
        .library(name: "Cohort", targets: ["Cohort"]),
        .library(name: "CohortSessions", targets: ["CohortSessions"]),
        .library(name: "CohortHummingbird", targets: ["CohortHummingbird"]),
        .library(name: "CohortTestKit", targets: ["CohortTestKit"]),
        .executable(name: "cohort", targets: ["CohortCLI"]),
        // An example third-party plugin (Examples/FileDiscovery), built as a shared library.
        .library(name: "CohortExampleFileDiscovery", type: .dynamic, targets: ["CohortExampleFileDiscovery"]),
        // Deliberately broken plugins the loader tests must reject.
        .library(name: "CohortFixtureBadABI", type: .dynamic, targets: ["CohortFixtureBadABI"]),
        .library(name: "CohortFixtureNoEntry", type: .dynamic, targets: ["CohortFixtureNoEntry"]),
        .library(name: "CohortFixtureWrongStamp", type: .dynamic, targets: ["CohortFixtureWrongStamp"]),
    ] + builtInPlugins.map { .library(name: "\($0)Plugin", type: .dynamic, targets: ["\($0)Plugin"]) },
    dependencies: [
        .package(path: "Packages/CohortCore"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
    ],
    targets: [
        .target(
            name: "Cohort",
            dependencies: [core] + builtInPlugins.map { Target.Dependency(stringLiteral: $0) },
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CohortSessions",
            dependencies: ["Cohort", core],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CohortHummingbird",
            dependencies: ["CohortSessions", "Cohort", core],
            // Hummingbird's protocols are compiled without NonisolatedNonsendingByDefault, so a
            // module conforming to them keeps the classic isolation rules.
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
        .target(
            name: "CohortTestKit",
            dependencies: ["Cohort", core, .product(name: "DequeModule", package: "swift-collections")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "CohortCLI",
            dependencies: ["Cohort", "CohortHummingbird", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        // Plugins: the implementation modules (linked statically into Cohort) …
        .target(
            name: "CohortTransportTCP",
            dependencies: [core, .product(name: "DequeModule", package: "swift-collections")],
            path: "Plugins/CohortTransportTCP/Sources",
            swiftSettings: swiftSettings
        ),
        .target(name: "CohortCodecBinary", dependencies: [core], path: "Plugins/CohortCodecBinary/Sources", swiftSettings: swiftSettings),
        .target(name: "CohortCodecJSON", dependencies: [core], path: "Plugins/CohortCodecJSON/Sources", swiftSettings: swiftSettings),
        .target(name: "CohortDiscoveryStatic", dependencies: [core], path: "Plugins/CohortDiscoveryStatic/Sources", swiftSettings: swiftSettings),
        // Cloud discovery: the Kubernetes API (AsyncHTTPClient and NIOSSL come through the core's
        // CohortHTTP module) and DNS (getaddrinfo on a dedicated thread).
        .target(name: "CohortDiscoveryKubernetes", dependencies: [core], path: "Plugins/CohortDiscoveryKubernetes/Sources", swiftSettings: swiftSettings),
        .target(name: "CohortDiscoveryDNS", dependencies: [core], path: "Plugins/CohortDiscoveryDNS/Sources", swiftSettings: swiftSettings),
        // Multicast discovery: UDP heartbeats on NIOPosix's DatagramBootstrap (through CohortNIO).
        .target(name: "CohortDiscoveryMulticast", dependencies: [core], path: "Plugins/CohortDiscoveryMulticast/Sources", swiftSettings: swiftSettings),
        .target(name: "CohortExampleFileDiscovery", dependencies: [core], path: "Examples/FileDiscovery/Sources", swiftSettings: swiftSettings),
        .target(name: "CohortFixtureBadABI", dependencies: [core], path: "Tests/Fixtures/BadABI", swiftSettings: swiftSettings),
        .target(name: "CohortFixtureNoEntry", dependencies: [core], path: "Tests/Fixtures/NoEntry", swiftSettings: swiftSettings),
        .target(name: "CohortFixtureWrongStamp", dependencies: [core], path: "Tests/Fixtures/WrongStamp", swiftSettings: swiftSettings),
        .testTarget(
            name: "CohortPluginTests",
            dependencies: ["Cohort", "CohortTestKit", core],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CohortHummingbirdTests",
            dependencies: ["CohortHummingbird", "CohortTestKit", core],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CohortSessionsTests",
            dependencies: ["CohortSessions", "Cohort", "CohortTestKit", core],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CohortCLITests",
            dependencies: ["CohortCLI", "CohortTestKit"],
            swiftSettings: swiftSettings
        ),
        // Multicast discovery and membership hardening, over loopback and in network namespaces
        // (scripts/netns; those tests need root and are skipped with a reason elsewhere).
        .testTarget(
            name: "CohortNetworkTests",
            dependencies: ["Cohort", "CohortDiscoveryMulticast", "CohortHummingbird", "CohortTestKit", core],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CohortCloudDiscoveryTests",
            dependencies: ["Cohort", "CohortTestKit", core],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CohortTests",
            dependencies: ["Cohort", "CohortTestKit", "CohortTransportTCP", core],
            swiftSettings: swiftSettings
        ),
    ] + builtInPlugins.map {
        // … and the entry points, only in the shared libraries (the C symbol names are the same
        // in every plugin, so they must not be linked into one executable together).
        .target(name: "\($0)Plugin", dependencies: [core, Target.Dependency(stringLiteral: $0)], path: "Plugins/\($0)/Entry", swiftSettings: swiftSettings)
    }
)
