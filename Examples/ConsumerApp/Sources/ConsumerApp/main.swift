// consumer-app NAME CLUSTER_LISTEN HTTP_PORT [MEMBER …]
// e.g. consumer-app web1 127.0.0.1:4001 8081 127.0.0.1:4002
import Cohort
import ConsumerAppKit
import Foundation
import Hummingbird
import Logging

let arguments = CommandLine.arguments.dropFirst()
guard arguments.count >= 3, let httpPort = Int(arguments[arguments.startIndex + 2]) else {
    print("usage: consumer-app NAME CLUSTER_LISTEN HTTP_PORT [MEMBER …]")
    exit(2)
}
var cluster = ClusterConfiguration(name: arguments[arguments.startIndex])
cluster.listen = try Endpoint(parsing: arguments[arguments.startIndex + 1])
cluster.members = try arguments.dropFirst(3).map { try Endpoint(parsing: $0) }
// A demo on loopback; see Cohort's docs for deploying a cluster on a network.
let replica = try Replica(cluster: cluster, http: .hostname("127.0.0.1", port: httpPort), logger: Logger(label: cluster.name))
try await replica.application.runService()
