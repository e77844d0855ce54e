/// The knobs of a scenario run (timings in seconds).
struct ChaosSettings: Sendable {
    var clients = 20
    /// Pause between a client's requests.
    var pause = 0.02
    /// A client request's deadline.
    var requestTimeout = 10.0
    /// Load before the fault.
    var warmup = 5.0
    /// Load after the last heal.
    var cooldown = 8.0
    /// How long a killed node stays down before its restart.
    var killDowntime = 8.0
    /// How long a node stays frozen (longer than failure detection).
    var freeze = 4.0
    /// How long a node's host stays unplugged.
    var partition = 30.0
    /// Quiet time between the load's end and the final reads (asynchronous replication drains).
    var settle = 2.0
    /// The node the single-node nemeses hit (index into the topology's nodes).
    var target = 1
    /// `cohort serve --manager`.
    var manager = "delta"
    /// Seconds a node may take to become ready after a (re)start.
    var readyTimeout = 60.0
    /// Seconds a node may take to exit after SIGTERM before the harness kills it.
    var stopTimeout = 30.0
    /// Membership convergence is polled for at most this long after a heal.
    var convergencePolling = 30.0
    /// nginx's `proxy_next_upstream`: true keeps its default (a failed request is sent to the next node).
    var nginxRetry = true
    /// The clients' increment request: `POST /counter` (default) or `GET /counter`. nginx sends
    /// a GET whose node failed to the next node (it takes GET as idempotent), a POST it already
    /// sent it does not: with GET, increments applied twice under a kill are nginx's retries.
    var incrementMethod = "POST"
    /// More `cohort serve` options for every node (for example `--when-split deny-writes`).
    var serveArguments: [String] = []
    var checker = ChaosChecker()
}
