// Re-exports the HTTP server, the HTTP client, TLS and the Prometheus exporter from the shared
// core library, so the Hummingbird integration, cloud-discovery plugins and any host embedding
// them share one copy of NIO, Logging and Metrics.
@_exported import AsyncHTTPClient
@_exported import CohortNIO
@_exported import Hummingbird
@_exported import NIOSSL
@_exported import Prometheus
