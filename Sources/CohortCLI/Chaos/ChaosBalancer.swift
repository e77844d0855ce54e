import Foundation

/// nginx in front of the nodes, run in the foreground from a generated configuration.
final class ChaosBalancer: @unchecked Sendable {
    let configuration: NginxConfiguration
    let directory: String
    private var process: ChaosProcess?

    init(configuration: NginxConfiguration, directory: String) {
        self.configuration = configuration
        self.directory = directory
    }

    /// The nginx program: `COHORT_NGINX`, else the first `nginx` on PATH or in /usr/sbin.
    static func nginxPath() -> String? {
        if let explicit = ProcessInfo.processInfo.environment["COHORT_NGINX"], !explicit.isEmpty {
            return FileManager.default.isExecutableFile(atPath: explicit) ? explicit : nil
        }
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        for dir in path + ["/usr/sbin", "/usr/local/sbin", "/sbin"] where FileManager.default.isExecutableFile(atPath: "\(dir)/nginx") {
            return "\(dir)/nginx"
        }
        return nil
    }

    /// Writes the configuration, checks it with `nginx -t`, starts nginx and waits until it
    /// accepts connections.
    func start(probe: ChaosHTTP) async throws {
        guard let nginx = Self.nginxPath() else {
            throw ChaosError("nginx is not installed (run scripts/bootstrap, or set COHORT_NGINX)")
        }
        let asRoot = getuid() == 0
        guard let text = configuration.file(directory: directory, asRoot: asRoot) else { return }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let file = "\(directory)/nginx.conf"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let test = ChaosProcess.run(nginx, ["-t", "-q", "-p", directory, "-c", file])
        guard test.status == 0 else {
            throw ChaosError("nginx rejected the generated configuration \(file): \(test.output)")
        }
        let process = try ChaosProcess(label: "nginx", executable: nginx, arguments: ["-p", directory, "-c", file], logPath: "\(directory)/nginx.out")
        self.process = process
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            guard process.isRunning else { break }
            // Any HTTP answer (even 502 while a node is not up) means nginx listens.
            if await probe.get("http://\(configuration.listen)/alive", timeout: 1).status != nil { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        let log = (try? String(contentsOfFile: "\(directory)/error.log", encoding: .utf8)) ?? ""
        throw ChaosError("nginx did not start listening on \(configuration.listen): \(process.tail()) \(log)")
    }

    func stop() async {
        guard let process else { return }
        process.signal(SIGQUIT)
        if !(await process.waitForExit(seconds: 5)) { await process.destroy() }
    }
}
