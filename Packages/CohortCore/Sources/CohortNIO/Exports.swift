// Re-exports socket-level SwiftNIO from the shared core library, so that the TCP transport and
// any third-party transport plugin use the same NIO copy as the host.
@_exported import CohortCore
@_exported import NIOPosix
@_exported import NIOFoundationCompat
