import Cohort
import CohortSessions
import ServiceLifecycle

/// Prints what an operator (and a test driving `cohort serve`) waits for: one line per membership
/// event (`member-added NAME …`, as `cohort node` prints them) and `ready NAME` once the node's
/// state transfer is done.
struct ServeAnnouncer: Service {
    let node: ClusterNode
    let events: AsyncStream<MembershipEvent>

    /// Subscribes to the node's membership events now, before the node runs.
    init(node: ClusterNode) {
        self.node = node
        self.events = node.channel.membershipEvents()
    }

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await event in events { Console.line(event.description) }
            }
            group.addTask {
                if (try? await node.waitUntilReady()) != nil {
                    let status = await node.status()
                    Console.line("ready \(status.node) (state transfer: \(status.transfer.sessions) sessions)")
                }
            }
            // Runs until the application stops (a service that returns would stop the app).
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }
}
