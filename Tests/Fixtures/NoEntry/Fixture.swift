// A shared library that is not a Cohort plugin: it exports no Cohort entry symbol.
import CohortCore

/// An ordinary public function, so the library is a valid Swift shared library.
public func cohortFixtureNoEntryGreeting() -> String { "not a plugin" }
