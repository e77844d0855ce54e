import AsyncHTTPClient
import CohortSessions
import Foundation
import NIOCore
import NIOHTTP1

/// The HTTP client of the admin commands: one request to a node's admin routes (`/cluster/*` of
/// `ClusterNode.addAdminRoutes`), with a deadline; errors say what to check.
struct AdminClient {
    /// The node's admin address (its HTTP address, where the admin routes are mounted).
    var address: String
    /// Seconds one request may take.
    var timeout: Double

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// The base URL for an address given as `HOST:PORT`, `:PORT` or a URL.
    static func baseURL(_ address: String) -> String {
        var text = address.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix(":") { text = "127.0.0.1" + text }
        if !text.contains("://") { text = "http://" + text }
        while text.hasSuffix("/") { text.removeLast() }
        return text
    }

    /// Sends a request; returns the status and the body.
    func request(_ method: HTTPMethod, _ path: String) async throws -> (status: Int, body: Data) {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .milliseconds(Int64(min(timeout, 5) * 1000)))
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        var request = HTTPClientRequest(url: Self.baseURL(address) + path)
        request.method = method
        let outcome: Result<(status: Int, body: Data), Failure>
        do {
            let response = try await client.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
            let body = try await response.body.collect(upTo: 4 << 20)
            outcome = .success((Int(response.status.code), Data(body.readableBytesView)))
        } catch {
            outcome = .failure(Failure(description: "cannot reach the admin address \(address) (\(method) \(path)): \(error); is the node running, and is this its HTTP address?"))
        }
        try? await client.shutdown()
        return try outcome.get()
    }

    /// GETs and decodes a JSON answer.
    func get<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        let (status, body) = try await request(.GET, path)
        guard status == 200 else {
            throw Failure(description: "\(address)\(path) answered \(status): \(String(decoding: body.prefix(300), as: UTF8.self))")
        }
        return try Self.decode(type, body, from: path)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ body: Data, from path: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: body)
        } catch {
            throw Failure(description: "\(path) did not answer a \(T.self): \(error) — is this a Cohort node's admin address?")
        }
    }

    /// Pretty, key-sorted JSON for `--json`.
    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "{}"
    }
}
