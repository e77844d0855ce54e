// swift-tools-version: 6.1
// Cohort's benchmark suite: a package of its own, so that building or testing the root package
// never resolves package-benchmark. Run it with `scripts/bench` from the repository root.
//
// NIO, Logging, Metrics and ServiceLifecycle come ONLY through the CohortCore product (see the
// root Package.swift and docs/adr/0001-core-as-shared-library.md); never list them here.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
]

let cohort: Target.Dependency = .product(name: "Cohort", package: "cohort")
let core: Target.Dependency = .product(name: "CohortCore", package: "CohortCore")
let benchmark: Target.Dependency = .product(name: "Benchmark", package: "benchmark")

/// A benchmark executable; the plugin discovers targets under `Benchmarks/<Name>`.
func benchmarkTarget(_ name: String, extra: [Target.Dependency] = []) -> Target {
    .executableTarget(
        name: name,
        dependencies: [benchmark, cohort, core, "CohortBenchSupport"] + extra,
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
        .package(path: "../Packages/CohortCore"),
        // The MallocInterposer trait must be listed explicitly: that drops the default
        // RuntimeInterposer trait, whose package is not available here (its ARC hooks are also
        // what crashes ARC metrics on Swift 6.3). See README.md.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .target(
            name: "CohortBenchSupport",
            dependencies: [cohort, core],
            path: "Sources/CohortBenchSupport",
            swiftSettings: swiftSettings
        ),
        benchmarkTarget("Serialization"),
        benchmarkTarget("FanOut", extra: [.product(name: "CohortTestKit", package: "cohort")]),
        benchmarkTarget("Loopback"),
        benchmarkTarget("Replication", extra: [
            .product(name: "CohortSessions", package: "cohort"),
            .product(name: "CohortTestKit", package: "cohort"),
        ]),
    ]
)
