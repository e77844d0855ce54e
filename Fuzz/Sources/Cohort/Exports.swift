// The fuzz build's stand-in for the Cohort module: the session files under test import Cohort
// for the core vocabulary it re-exports (as Sources/Cohort/Exports.swift does), and use nothing
// else of it.
@_exported import CohortCore
