// swift-tools-version: 6.1
// An application that uses Cohort the way a Hummingbird user would: it depends on Cohort by URL
// and version, keeps hummingbird-auth's `SessionMiddleware`, and gives it Cohort's
// `ClusterPersistDriver` instead of a memory or Redis driver — the one-line change — plus a
// `ClusterNode` service.
//
// In your own package:
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
    name: "cohort-consumer-app",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "consumer-app", targets: ["ConsumerApp"]),
    ],
    dependencies: [
        cohort,
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        .target(
            name: "ConsumerAppKit",
            dependencies: [
                .product(name: "Cohort", package: "cohort"),
                .product(name: "CohortSessions", package: "cohort"),
                .product(name: "CohortHummingbird", package: "cohort"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "ConsumerApp",
            dependencies: [
                "ConsumerAppKit",
                .product(name: "Cohort", package: "cohort"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        .testTarget(
            name: "ConsumerAppTests",
            dependencies: [
                "ConsumerAppKit",
                .product(name: "Cohort", package: "cohort"),
                .product(name: "CohortHummingbird", package: "cohort"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ]
)
