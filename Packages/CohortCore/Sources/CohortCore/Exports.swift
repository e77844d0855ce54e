// The libraries whose types cross the plugin boundary are linked only into libCohortCore.so and
// re-exported from here, so a plugin or host that imports CohortCore uses the one shared copy.
@_exported import Logging
@_exported import Metrics
@_exported import NIOConcurrencyHelpers
@_exported import NIOCore
@_exported import ServiceLifecycle
