import Cohort
import CohortDiscoveryKubernetes
import CohortTestKit
import Foundation
import Testing

/// What the Kubernetes discovery does when the API misbehaves: rotated and refused tokens,
/// missing permissions, errors, slow and truncated answers. The rule throughout: an error never
/// replaces the last known view.
@Suite("Kubernetes discovery failures", .enabled(if: TestPKI.available, "needs the openssl command to make certificates"), .timeLimit(.minutes(2)))
struct KubernetesFailureTests {
    let local = localMember()
    let good = PodListJSON.list([PodSpec(name: "a", ip: "10.0.0.1", ports: ["cluster": 4001]), PodSpec(name: "b", ip: "10.0.0.2", ports: ["cluster": 4001])])
    let goodView = [Endpoint(host: "10.0.0.1", port: 4001), Endpoint(host: "10.0.0.2", port: 4001)]

    /// Every candidate list reported after the first good one is the good one.
    func keptTheView(_ events: EventRecorder) -> Bool {
        let lists = events.candidateLists
        guard let first = lists.firstIndex(of: goodView) else { return false }
        return lists[first...].allSatisfy { $0 == goodView }
    }

    @Test func aRotatedTokenFileIsReadAgain() async throws {
        try await withStub { harness in
            harness.serve(good)
            let first = fakeServiceAccountToken(namespace: "demo", account: "cohort", serial: 1)
            let second = fakeServiceAccountToken(namespace: "demo", account: "cohort", serial: 2)
            let provider = try harness.provider(["portName": "cluster"])
            try await withRunning(provider, local: local) { _ in
                #expect(await eventually { harness.stub.requests.filter { $0.bearer == first }.count >= 3 })
                #expect(provider.status.tokenReads == 1, "an unchanged token file is not read per poll")
                try harness.writeToken(second)
                #expect(await eventually { harness.stub.requests.last?.bearer == second })
                let polls = harness.stub.requests.count
                #expect(await eventually { harness.stub.requests.count >= polls + 3 })
                #expect(harness.stub.requests.suffix(3).allSatisfy { $0.bearer == second })
                #expect(provider.status.tokenReads == 2)
                #expect(provider.status.failedPolls == 0, "\(String(describing: provider.status.lastError))")
            }
        }
    }

    @Test func aRefusedTokenIsReadAgainAndTheRequestRepeated() async throws {
        try await withStub { harness in
            let old = "token-AAAA"
            let new = "token-BBBB"
            harness.stub.respond { request in
                request.bearer == new ? .json(status: 200, body: self.good) : .status(401, reason: "Unauthorized", message: "Unauthorized")
            }
            try harness.writeToken(old)
            let provider = try harness.provider(["portName": "cluster"])
            try await withRunning(provider, local: local) { events in
                // Refused twice per poll (the retry re-reads the same file): a credentials error.
                #expect(await eventually { provider.status.failedPolls >= 2 })
                #expect(provider.status.lastError?.code == .badConfiguration)
                #expect(provider.status.lastError?.message.contains("401") == true)
                #expect(events.candidateLists.isEmpty, "nothing is known yet, so nothing is proposed")
                // Rotate the token in place without changing size, inode or modification time:
                // only the re-read after a 401 can notice it.
                try rewriteKeepingIdentity(harness.tokenFile, with: new)
                #expect(await events.waitFor(goodView))
                let requests = harness.stub.requests
                let firstNew = try #require(requests.firstIndex { $0.bearer == new })
                #expect(firstNew > 0 && requests[firstNew - 1].bearer == old, "the 401 was followed at once by a request with the re-read token")
                #expect(provider.status.lastError == nil)
            }
        }
    }

    @Test func forbiddenNamesTheRoleToCreateAndIsLoggedOnce() async throws {
        try await withStub { harness in
            harness.stub.respond { _ in
                .status(403, reason: "Forbidden", message: #"pods is forbidden: User "system:serviceaccount:demo:cohort" cannot list resource "pods" in API group "" in the namespace "demo""#)
            }
            let provider = try harness.provider()
            try await withRunning(provider, local: local) { _ in
                #expect(await eventually(timeout: .seconds(90)) { provider.status.failedPolls >= 5 })
            }
            let error = try #require(provider.status.lastError)
            #expect(error.code == .badConfiguration)
            for part in ["403", "Role", "get", "list", "pods", "namespace 'demo'", "service account 'cohort'", "RoleBinding", "cannot list resource"] {
                #expect(error.message.contains(part), "missing '\(part)' in: \(error.message)")
            }
            #expect(harness.capture.lines(containing: "403").count == 1, "logged once, not per poll:\n\(harness.capture.text)")
        }
    }

    @Test func serverErrorsKeepTheLastViewAndRecover() async throws {
        try await withStub { harness in
            harness.serve(good)
            let provider = try harness.provider(["portName": "cluster"])
            try await withRunning(provider, local: local) { events in
                #expect(await events.waitFor(goodView))
                harness.stub.respond { _ in .status(500, reason: "InternalError", message: "etcdserver: request timed out") }
                #expect(await eventually { provider.status.consecutiveFailures >= 4 })
                #expect(keptTheView(events), "\(events.candidateLists)")
                #expect(provider.status.lastView == goodView)
                #expect(provider.status.lastError?.code == .connectionFailed)
                #expect(provider.status.lastError?.message.contains("500") == true)
                #expect(provider.status.lastError?.message.contains("etcdserver") == true)
                #expect(harness.capture.lines(containing: "HTTP 500").count == 1, "\(harness.capture.text)")

                let next = PodListJSON.list([PodSpec(name: "c", ip: "10.0.0.3", ports: ["cluster": 4001])])
                harness.serve(next)
                harness.serveDefault()
                #expect(await events.waitFor([Endpoint(host: "10.0.0.3", port: 4001)]))
                #expect(provider.status.lastError == nil)
                #expect(harness.capture.lines(containing: "works again").count == 1, "\(harness.capture.text)")
            }
        }
    }

    @Test func slowAndHangingAnswersTimeOutAndKeepTheLastView() async throws {
        try await withStub { harness in
            harness.serve(good)
            let provider = try harness.provider(["portName": "cluster", "requestTimeoutMs": "300"])
            try await withRunning(provider, local: local) { events in
                #expect(await events.waitFor(goodView))
                let other = PodListJSON.list([])
                let before = provider.status.failedPolls
                harness.stub.respond { _ in .delayed(.seconds(3), .json(status: 200, body: other)) }
                #expect(await eventually { provider.status.failedPolls >= before + 2 })
                #expect(provider.status.lastError?.code == .timeout, "\(String(describing: provider.status.lastError))")
                harness.stub.respond { _ in .hang }
                let failed = provider.status.failedPolls
                #expect(await eventually { provider.status.failedPolls >= failed + 2 })
                #expect(keptTheView(events), "\(events.candidateLists)")
                #expect(!events.candidateLists.contains([]), "an error never reports an empty list")
            }
        }
    }

    @Test func truncatedAnswersKeepTheLastView() async throws {
        try await withStub { harness in
            harness.serve(good)
            let provider = try harness.provider(["portName": "cluster"])
            try await withRunning(provider, local: local) { events in
                #expect(await events.waitFor(goodView))
                let body = try Fixture.text("openshift_rolling_update.json")
                harness.stub.respond { _ in .truncated(body: body, bytes: body.utf8.count / 2) }
                #expect(await eventually { provider.status.failedPolls >= 3 })
                #expect(keptTheView(events), "\(events.candidateLists)")
                #expect([.connectionFailed, .timeout].contains(provider.status.lastError?.code))
            }
        }
    }

    @Test func missingCredentialsAreClearConfigurationErrors() async throws {
        try await withStub { harness in
            harness.serve(good)
            let noToken = try harness.provider(["tokenFile": harness.directory.file("no-such-token")])
            try await withRunning(noToken, local: local) { _ in
                #expect(await eventually { noToken.status.failedPolls >= 3 })
            }
            let tokenError = try #require(noToken.status.lastError)
            #expect(tokenError.code == .badConfiguration)
            #expect(tokenError.message.contains("no-such-token") && tokenError.message.contains("token"))
            #expect(harness.stub.requests.isEmpty, "no request without credentials")
            #expect(harness.capture.lines(containing: "no-such-token").count == 1, "\(harness.capture.text)")

            let noCA = try harness.provider(["caFile": harness.directory.file("no-such-ca.crt")])
            try await withRunning(noCA, local: local) { _ in
                #expect(await eventually { noCA.status.failedPolls >= 2 })
            }
            #expect(noCA.status.lastError?.code == .badConfiguration)
            #expect(noCA.status.lastError?.message.contains("CA certificate") == true)
        }
    }
}

/// Overwrites a file in place with text of the same length and restores its modification
/// time, so its inode, size and mtime are unchanged.
func rewriteKeepingIdentity(_ path: String, with text: String) throws {
    var before = stat()
    guard stat(path, &before) == 0 else { throw CohortError(.notFound, "no \(path)") }
    guard let handle = FileHandle(forUpdatingAtPath: path) else { throw CohortError(.notFound, "cannot open \(path)") }
    let bytes = Data(text.utf8)
    guard bytes.count == Int(before.st_size) else { throw CohortError(.internal, "the new text must have the old length") }
    try handle.seek(toOffset: 0)
    try handle.write(contentsOf: bytes)
    try handle.close()
    var times = [before.st_atim, before.st_mtim]
    guard utimensat(AT_FDCWD, path, &times, 0) == 0 else { throw CohortError(.internal, "utimensat failed: \(errno)") }
}
