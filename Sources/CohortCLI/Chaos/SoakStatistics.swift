import Foundation

/// The arithmetic of the soak: percentiles, the least-squares slope of memory over time, and the
/// resident memory of a process. Pure except ``residentKiB(pid:)``.
enum SoakStatistics {
    /// The `p`-th percentile (0…100) of `values`, nearest rank; nil when empty.
    static func percentile(_ values: [Double], _ p: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }

    /// The slope of `y` over `x` by least squares; nil with fewer than two distinct x.
    static func slope(_ points: [(x: Double, y: Double)]) -> Double? {
        guard points.count >= 2 else { return nil }
        let n = Double(points.count)
        let meanX = points.map(\.x).reduce(0, +) / n
        let meanY = points.map(\.y).reduce(0, +) / n
        let sxx = points.map { ($0.x - meanX) * ($0.x - meanX) }.reduce(0, +)
        guard sxx > 0 else { return nil }
        let sxy = points.map { ($0.x - meanX) * ($0.y - meanY) }.reduce(0, +)
        return sxy / sxx
    }

    /// `VmRSS` of a process in KiB, from /proc/PID/status; nil when it cannot be read.
    static func residentKiB(pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        return residentKiB(status: text)
    }

    /// `VmRSS` from the text of /proc/PID/status.
    static func residentKiB(status text: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count >= 2 { return Int(fields[1]) }
        }
        return nil
    }

    /// Sums the samples of the Prometheus text metric `name` (every label set).
    static func metricSum(_ text: String, name: String) -> Double {
        var total = 0.0
        for line in text.split(separator: "\n") where line.hasPrefix(name) && !line.hasPrefix("#") {
            let afterName = line.dropFirst(name.count)
            guard let first = afterName.first, first == " " || first == "{" else { continue }
            if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { total += value }
        }
        return total
    }
}
