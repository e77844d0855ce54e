@_exported import Cohort
@_exported import CohortHTTP
@_exported import CohortSessions
