// Re-exports the HTTP server and the Prometheus exporter from the shared core library, so the
// Hummingbird integration and any host embedding it share one copy of NIO, Logging and Metrics.
@_exported import CohortNIO
@_exported import Hummingbird
@_exported import Prometheus
