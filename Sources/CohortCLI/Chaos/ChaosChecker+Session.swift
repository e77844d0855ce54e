extension ChaosChecker {
    /// The rules over one client's session, fed its requests in order.
    struct SessionCheck {
        let client: Int
        var acknowledged = 0
        var lost = 0
        var appliedTwice = 0
        var resets = 0
        var finalReadFailures = 0
        /// Acknowledged counts of the current session not (yet) shown lost.
        private var live: [Int] = []
        /// The last acknowledged answer: its count and session id.
        private var previous: (count: Int, session: String?)?
        /// The highest count acknowledged in this session, and the requests sent since the one
        /// that got it (failed ones, and acknowledged ones answered from a copy that had fallen
        /// behind): each may have added one increment above it.
        private var highest = 0
        private var sinceHighest = 0

        init(client: Int) {
            self.client = client
        }

        mutating func on(_ request: ChaosHistory.Request, note: (String) -> Void) {
            sinceHighest += 1
            guard request.acknowledged, let count = request.count else { return }
            acknowledged += 1
            let where_ = "client \(client) #\(request.sequence) on \(request.node ?? "?")"
            let previousCount = previous?.count ?? 0
            let sessionChanged = previous.map { old in
                old.session != nil && request.session != nil && old.session != request.session
            } ?? false
            if previous != nil && (sessionChanged || (count == 1 && previousCount >= 1)) {
                resets += 1
                lost += live.count
                note("\(where_): session reset (count \(previousCount) → \(count)\(sessionChanged ? ", new session id" : "")); \(live.count) acknowledged increments gone")
                live.removeAll()
                highest = count
                sinceHighest = 0
            } else if count <= previousCount {
                let gone = live.filter { $0 >= count }.count
                lost += gone
                live.removeAll { $0 >= count }
                note("\(where_): count went back \(previousCount) → \(count); \(gone) acknowledged increments lost")
            } else if count > highest {
                // Above everything seen: at most one increment per request sent since the highest.
                let extra = count - highest - sinceHighest
                if extra > 0 {
                    appliedTwice += extra
                    note("\(where_): count jumped \(highest) → \(count) with \(sinceHighest - 1) other requests since \(highest); \(extra) applied twice")
                }
                highest = count
                sinceHighest = 0
            }
            live.append(count)
            previous = (count, request.session)
        }

        /// Every node's final count must cover every acknowledged increment still live.
        mutating func onFinalReads(_ reads: [ChaosHistory.FinalRead], note: (String) -> Void) {
            guard previous != nil else { return }
            var worst = 0
            for read in reads {
                guard let count = read.count else {
                    finalReadFailures += 1
                    note("client \(client): final read on \(read.node) failed (\(read.error ?? "no answer"))")
                    continue
                }
                let sameSession = previous?.session == nil || read.session == previous?.session
                let held = sameSession ? count : 0
                let missing = live.filter { $0 > held }.count
                if missing > 0 {
                    note("client \(client): \(read.node) holds count \(held)\(sameSession ? "" : " (session unknown there)") but \(live.max() ?? 0) was acknowledged; \(missing) acknowledged increments missing")
                }
                worst = max(worst, missing)
            }
            lost += worst
        }
    }
}
