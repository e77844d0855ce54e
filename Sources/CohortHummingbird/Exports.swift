// `ClusterNode` and the admin responses live in `CohortSessions` (framework-neutral, shared with
// `CohortVapor`); `import CohortHummingbird` keeps bringing them, as before they moved. This is
// this package's own module, not a third-party one.
@_exported import CohortSessions
