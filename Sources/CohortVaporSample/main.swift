// The Vapor sample app: the counter of `cohort demo` in a Vapor app whose sessions Cohort
// replicates. Build it with the `Vapor` trait: `swift run --traits Vapor cohort-vapor-sample`.
#if Vapor
import Cohort
import CohortSessions
import CohortVapor
import Foundation
import Logging
import Vapor

var environment = try Environment.detect()
try LoggingSystem.bootstrap(from: &environment)
let app = try await Application.make(environment)
do {
    try configure(app)
    try await app.execute()
} catch {
    app.logger.report(error: error)
    try? await app.asyncShutdown()
    throw error
}
try await app.asyncShutdown()
#else
print("cohort-vapor-sample was built without the Vapor trait: build it with `swift build --traits Vapor`.")
#endif
