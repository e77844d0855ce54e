import CohortCore
