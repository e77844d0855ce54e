// `import Cohort` brings the core vocabulary and the built-in plugins.
@_exported import CohortCore
@_exported import CohortCodecBinary
@_exported import CohortCodecJSON
@_exported import CohortDiscoveryStatic
@_exported import CohortTransportTCP
