// `import Cohort` brings the core vocabulary and the built-in plugins.
@_exported import CohortCore
@_exported import CohortCodecBinary
@_exported import CohortCodecJSON
@_exported import CohortDiscoveryDNS
@_exported import CohortDiscoveryKubernetes
@_exported import CohortDiscoveryMulticast
@_exported import CohortDiscoveryStatic
@_exported import CohortTransportTCP
