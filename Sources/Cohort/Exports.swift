// `import Cohort` brings the core vocabulary (members, messages, send options, errors and the plugin
// protocols) with it: the core is this package's own module, not a third-party one. Plugins are
// modules of their own (`import CohortTransportTCP` for the TCP transport's type); NIO, Logging,
// Metrics and ServiceLifecycle are imported by whoever uses them.
@_exported import CohortCore
