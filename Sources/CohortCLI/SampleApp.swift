import Cohort
import CohortCore
import CohortHummingbird
import CohortSessions
import Foundation
import Hummingbird
import NIOCore
import NIOFoundationEssentialsCompat

/// The sample app of `cohort demo`: a counter in a replicated session, and a live page.
enum SampleApp {
    struct CounterResponse: Codable {
        var count: Int
        var node: String
        var session: String
    }

    static func addRoutes(to router: RouterGroup<ClusterRequestContext>, node: ClusterNode) {
        let name = node.channel.localMember.name
        // The increment changes state, so it is a POST: a balancer does not send a POST it
        // already sent to a node that failed to another one (nginx's default), which would
        // apply it twice. GET stays for browsers and old clients (see docs/balancers.md).
        let counter: @Sendable (Request, ClusterRequestContext) async throws -> Response = { _, context in
            let count = try increment(context, node)
            let id = context.clusterSession.session?.id ?? ""
            return try json(CounterResponse(count: count, node: name, session: id))
        }
        router.post("/counter", use: counter)
        router.get("/counter", use: counter)
        // Read-only: the session's count without incrementing (0 and an empty session when the
        // request names no session this node can find). The fault-injection harness reads the
        // final state with it (`cohort chaos`).
        router.get("/counter/current") { _, context -> Response in
            let session = context.clusterSession.session
            let count = try session?.attribute("count", as: Int.self) ?? 0
            return try json(CounterResponse(count: count, node: name, session: session?.id ?? ""))
        }
        router.get("/") { request, context -> Response in
            var count: Int?
            if request.uri.queryParameters["increment"] != nil {
                count = try increment(context, node)
            } else if let session = context.clusterSession.session {
                count = try session.attribute("count", as: Int.self) ?? 0
            }
            let html = page(node: node, count: count, session: context.clusterSession.session?.id)
            return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: html)))
        }
    }

    static func increment(_ context: ClusterRequestContext, _ node: ClusterNode) throws -> Int {
        try context.clusterSession.update(node.sessions) { session in
            let next = (try session.attribute("count", as: Int.self) ?? 0) + 1
            try session.setAttribute("count", next)
            return next
        }
    }

    static func json<T: Encodable>(_ value: T) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(value)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(data: data)))
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func page(node: ClusterNode, count: Int?, session: String?) -> String {
        let view = node.channel.view
        let me = view.local
        let everyone = view.allMembers
        let buttons = everyone.compactMap { member -> String? in
            guard let http = member.metadata["http"] else { return nil }
            let here = member.id == me.id ? " here" : ""
            return "<a class=\"button\(here)\" href=\"http://\(escape(http))/?increment=1\">+1 on \(escape(member.name))</a>"
        }.joined(separator: "\n")
        let rows = node.membersResponse().members.map { m in
            "<tr class=\"\(escape(m.state))\"><td>\(escape(m.name))</td><td>\(escape(m.address))</td><td>\(escape(m.state))</td></tr>"
        }.joined(separator: "\n")
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Cohort demo — \(escape(me.name))</title>
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <style>
            body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 46rem; color: #1d2330; }
            h1 { font-size: 1.4rem; } .served { font-size: 1.1rem; }
            .count { font-size: 3.5rem; font-weight: 700; margin: .3rem 0; }
            .button { display: inline-block; margin: .3rem .4rem .3rem 0; padding: .6rem 1rem; border-radius: .4rem;
                      background: #2456c8; color: #fff; text-decoration: none; }
            .button.here { background: #0d7a4a; }
            table { border-collapse: collapse; margin-top: .5rem; } td, th { padding: .3rem .8rem; border-bottom: 1px solid #ddd; text-align: left; }
            tr.suspected td { color: #b36b00; } tr.self td { font-weight: 600; }
            code { background: #f1f3f7; padding: .1rem .3rem; border-radius: .2rem; }
            </style></head>
            <body>
            <h1>Cohort session replication demo</h1>
            <p class="served">This page was served by <strong>\(escape(me.name))</strong> (\(escape(me.metadata["http"] ?? ""))).</p>
            <p>Your counter:</p>
            <div class="count" id="count">\(count.map(String.init) ?? "—")</div>
            <p>Session: <code>\(escape(session ?? "none yet"))</code></p>
            <p>Increment on any node — the count continues, because every node has your session:</p>
            \(buttons)
            <h2>Members seen by \(escape(me.name))</h2>
            <table id="members"><tr><th>name</th><th>cluster address</th><th>state</th></tr>
            \(rows)
            </table>
            <p>Kill a node (<code>kill -9 PID</code>) and keep clicking on the others: nothing is lost.</p>
            <script>
            async function refresh() {
              try {
                const r = await fetch('/cluster/members');
                const body = await r.json();
                const t = document.getElementById('members');
                t.innerHTML = '<tr><th>name</th><th>cluster address</th><th>state</th></tr>' +
                  body.members.map(m => `<tr class="${m.state}"><td>${m.name}</td><td>${m.address}</td><td>${m.state}</td></tr>`).join('');
              } catch (e) {}
            }
            setInterval(refresh, 1000);
            </script>
            </body></html>
            """
    }
}
