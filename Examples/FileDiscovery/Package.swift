// swift-tools-version: 6.1
// An example third-party Cohort plugin in a package of its own: a discovery provider that reads
// members from a file, built as a shared library that `cohort node --plugin` loads.
//
// In your own package, depend on Cohort by URL and version:
//     .package(url: "https://github.com/<owner>/cohort.git", from: "0.1.0")
// Here the URL comes from COHORT_PACKAGE_URL (CI points it at a tagged clone of this repository,
// `file://…`); without it the example builds against the checkout it sits in.
import Foundation
import PackageDescription

let cohort: Package.Dependency = {
    if let url = Context.environment["COHORT_PACKAGE_URL"] {
        return .package(url: url, from: "0.1.0")
    }
    return .package(name: "cohort", path: "../..")
}()

let package = Package(
    name: "cohort-example-file-discovery",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "CohortExampleFileDiscovery", type: .dynamic, targets: ["CohortExampleFileDiscovery"]),
    ],
    dependencies: [
        cohort,
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .target(
            name: "CohortExampleFileDiscovery",
            dependencies: [
                .product(name: "CohortPluginSDK", package: "cohort"),
                .product(name: "CohortCore", package: "cohort"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "FileDiscoveryTests",
            dependencies: [
                "CohortExampleFileDiscovery",
                .product(name: "Cohort", package: "cohort"),
                .product(name: "CohortTestKit", package: "cohort"),
                .product(name: "CohortTransportTCP", package: "cohort"),
                .product(name: "CohortCodecBinary", package: "cohort"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
    ]
)
