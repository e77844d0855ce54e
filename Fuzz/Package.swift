// swift-tools-version: 6.1
// Cohort's libFuzzer targets: a package of its own, built only by `scripts/fuzz` (with
// `--sanitize=fuzzer --sanitize=address` and `-parse-as-library`), never resolved as a
// dependency. It does not depend on the root package: the decoders and state machines under
// test are compiled from the root's own source files, linked in by the symlinks under
// Sources/ (whole module folders for the core and the codecs, single files for the pure parts
// of the sessions layer and the discovery plugins), so a fuzz build needs only NIOCore and
// Logging. `Cohort` here is a stand-in that re-exports the core, as the real one does.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let nioCore: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
let nioConcurrencyHelpers: Target.Dependency = .product(name: "NIOConcurrencyHelpers", package: "swift-nio")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")

/// One fuzz target: an executable whose entry points are `LLVMFuzzerTestOneInput` and
/// `LLVMFuzzerInitialize`; libFuzzer provides `main`.
func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + dependencies, swiftSettings: swiftSettings)
}

let package = Package(
    name: "cohort-fuzz",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .target(name: "CohortCore", dependencies: [nioCore, nioConcurrencyHelpers, logging], swiftSettings: swiftSettings),
        .target(name: "Cohort", dependencies: ["CohortCore"], swiftSettings: swiftSettings),
        .target(name: "CohortCodecBinary", dependencies: ["CohortCore", nioCore], swiftSettings: swiftSettings),
        .target(name: "CohortCodecJSON", dependencies: ["CohortCore", nioCore], swiftSettings: swiftSettings),
        .target(name: "CohortDiscoveryMulticast", dependencies: ["CohortCore", nioCore], swiftSettings: swiftSettings),
        .target(name: "CohortDiscoveryKubernetes", dependencies: ["CohortCore"], swiftSettings: swiftSettings),
        .target(name: "CohortSessions", dependencies: ["Cohort", "CohortCore", "FuzzSupport", "CohortCodecBinary", "CohortCodecJSON", nioCore], swiftSettings: swiftSettings),
        .target(name: "FuzzSupport", swiftSettings: swiftSettings),
        fuzzTarget("FuzzWire", ["CohortCore", nioCore]),
        fuzzTarget("FuzzMulticast", ["CohortCore", "CohortDiscoveryMulticast", nioCore]),
        fuzzTarget("FuzzBinary", ["CohortCore", "CohortSessions", "CohortCodecBinary", nioCore]),
        fuzzTarget("FuzzJSON", ["CohortCore", "CohortSessions", "CohortCodecJSON", nioCore]),
        fuzzTarget("FuzzSessions", ["CohortSessions"]),
        fuzzTarget("FuzzPodList", ["CohortCore", "CohortDiscoveryKubernetes"]),
        fuzzTarget("FuzzStates", ["CohortCore", "CohortSessions"]),
    ]
)
