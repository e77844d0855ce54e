import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// An HTTP client of the harness: GET with a cookie and a deadline, never retried here. One
/// instance keeps at most one keep-alive connection per host.
final class ChaosHTTP: Sendable {
    /// What a GET came back with.
    struct Result: Sendable {
        var status: Int?
        var body: Data = Data()
        /// The session cookie's new value when the answer set it ("" when it deleted it).
        var setCookie: String?
        var error: String?
    }

    private let client: HTTPClient
    let cookieName: String

    /// - Parameter failFast: do not retry failed connection attempts inside one request (a
    ///   client that talks to nodes directly must see a dead node at once).
    init(connectTimeout: Double = 2, failFast: Bool = false, cookieName: String = "COHORT_SESSION") {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .milliseconds(Int64(connectTimeout * 1000)))
        configuration.connectionPool = .init(idleTimeout: .seconds(120), concurrentHTTP1ConnectionsPerHostSoftLimit: 1)
        configuration.connectionPool.retryConnectionEstablishment = !failFast
        configuration.redirectConfiguration = .disallow
        configuration.httpVersion = .http1Only
        configuration.decompression = .disabled
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        self.cookieName = cookieName
    }

    func get(_ url: String, cookie: String? = nil, timeout: Double) async -> Result {
        await request("GET", url, cookie: cookie, timeout: timeout)
    }

    /// A request with `method` (GET or POST, with an empty body).
    func request(_ method: String, _ url: String, cookie: String? = nil, timeout: Double) async -> Result {
        var request = HTTPClientRequest(url: url)
        request.method = method == "POST" ? .POST : .GET
        if let cookie { request.headers.add(name: "Cookie", value: "\(cookieName)=\(cookie)") }
        do {
            let response = try await client.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
            let body = try await response.body.collect(upTo: 1 << 20)
            var result = Result(status: Int(response.status.code), body: Data(body.readableBytesView))
            for header in response.headers[canonicalForm: "set-cookie"] {
                let pair = header.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
                if pair.hasPrefix("\(cookieName)=") {
                    result.setCookie = String(pair.dropFirst(cookieName.count + 1))
                }
            }
            return result
        } catch {
            return Result(error: Self.describe(error))
        }
    }

    func shutdown() async {
        try? await client.shutdown()
    }

    /// A short, stable description of a client error (for the history and its counts).
    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout: return "timeout"
            case .connectTimeout: return "connect timeout"
            case .remoteConnectionClosed: return "connection closed"
            default: return "\(error)"
            }
        }
        let text = String(describing: error)
        if text.contains("connectTimeout") { return "connect timeout" }
        if text.contains("Connection refused") || text.contains("connection refused") { return "connection refused" }
        if text.contains("reset by peer") { return "connection reset" }
        return text.count > 160 ? String(text.prefix(160)) + "…" : text
    }
}
