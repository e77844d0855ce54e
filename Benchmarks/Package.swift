// swift-tools-version: 6.1
// Cohort's benchmark suite: a package of its own, so that building or testing the root package
// never resolves package-benchmark. Run it with `scripts/bench` from the repository root.
//
// It is the one package that may depend on the root by `path:`: nobody resolves it as a
// dependency.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let cohort: Target.Dependency = .product(name: "Cohort", package: "cohort")
let core: Target.Dependency = .product(name: "CohortCore", package: "cohort")
let plugins: [Target.Dependency] = ["CohortTransportTCP", "CohortCodecBinary", "CohortCodecJSON", "CohortDiscoveryStatic", "CohortPluginSDK"].map {
    .product(name: $0, package: "cohort")
}
let nio: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
    .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
    .product(name: "Logging", package: "swift-log"),
]
let benchmark: Target.Dependency = .product(name: "Benchmark", package: "benchmark")

/// A benchmark executable; the plugin discovers targets under `Benchmarks/<Name>`.
func benchmarkTarget(_ name: String, extra: [Target.Dependency] = []) -> Target {
    .executableTarget(
        name: name,
        dependencies: [benchmark, cohort, core, "CohortBenchSupport"] + plugins + nio + extra,
        path: "Benchmarks/\(name)",
        swiftSettings: swiftSettings,
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
}

let package = Package(
    name: "cohort-benchmarks",
    dependencies: [
        // `name:` pins the identity to the root manifest's name, whatever the checkout folder is called.
        .package(name: "cohort", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        // The MallocInterposer trait must be listed explicitly: that drops the default
        // RuntimeInterposer trait, whose package is not available here (its ARC hooks are also
        // what crashes ARC metrics on Swift 6.3). See README.md.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .target(
            name: "CohortBenchSupport",
            dependencies: [cohort, core] + plugins + nio,
            path: "Sources/CohortBenchSupport",
            swiftSettings: swiftSettings
        ),
        benchmarkTarget("Serialization", extra: [.product(name: "CohortSessions", package: "cohort")]),
        benchmarkTarget("FanOut", extra: [.product(name: "CohortTestKit", package: "cohort")]),
        benchmarkTarget("Loopback"),
        benchmarkTarget("SecureLoopback"),
        benchmarkTarget("PluginBoundary"),
        // The cost per message of each interceptor stage at 1 KiB and 64 KiB (issue 16).
        benchmarkTarget("Interceptors"),
        // The raw-channel bench shaped like the Tribes anchor harness: processes on loopback,
        // driven by `Benchmarks/compare` or run alone (`swift run -c release ChannelBench`).
        .executableTarget(
            name: "ChannelBench",
            dependencies: [cohort, core, "CohortBenchSupport"] + plugins + nio,
            path: "Sources/ChannelBench",
            swiftSettings: swiftSettings
        ),
        benchmarkTarget("Replication", extra: [
            .product(name: "CohortSessions", package: "cohort"),
            .product(name: "CohortTestKit", package: "cohort"),
        ]),
    ]
)
