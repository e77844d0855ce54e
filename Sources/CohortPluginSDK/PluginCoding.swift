import CohortCore
import NIOCore

/// Byte forms of the core's values as they cross the plugin boundary. Integers are big-endian;
/// strings and byte strings carry a UInt32 length; lists a UInt32 count, bounded on reading by
/// the bytes left.
extension ByteBuffer {
    mutating func writePlugin(_ endpoint: Endpoint) {
        writeLengthPrefixedString(endpoint.host)
        writeInteger(Int64(endpoint.port))
    }

    mutating func readPluginEndpoint() throws -> Endpoint {
        let host = try readLengthPrefixedStringChecked()
        let port = try readPluginInteger(Int64.self)
        guard let exact = Int(exactly: port), (0...65535).contains(exact) else { throw PluginValue.malformed("port \(port)") }
        return Endpoint(host: host, port: exact)
    }

    mutating func writePlugin(_ member: Member) {
        writeInteger(member.id.high)
        writeInteger(member.id.low)
        writeLengthPrefixedString(member.name)
        writePlugin(member.endpoint)
        writeLengthPrefixedString(member.domain)
        writeInteger(UInt32(truncatingIfNeeded: member.metadata.count))
        for (key, value) in member.metadata.sorted(by: { $0.key < $1.key }) {
            writeLengthPrefixedString(key)
            writeLengthPrefixedString(value)
        }
        writeInteger(member.startTime)
    }

    mutating func readPluginMember() throws -> Member {
        let id = MemberID(high: try readPluginInteger(UInt64.self), low: try readPluginInteger(UInt64.self))
        let name = try readLengthPrefixedStringChecked()
        let endpoint = try readPluginEndpoint()
        let domain = try readLengthPrefixedStringChecked()
        let count = try readPluginCount(minimumBytesEach: 8)
        var metadata: [String: String] = [:]
        for _ in 0..<count {
            let key = try readLengthPrefixedStringChecked()
            metadata[key] = try readLengthPrefixedStringChecked()
        }
        let startTime = try readPluginInteger(Int64.self)
        return Member(id: id, name: name, endpoint: endpoint, domain: domain, metadata: metadata, startTime: startTime)
    }

    mutating func writePlugin(_ members: [Member]) {
        writeInteger(UInt32(truncatingIfNeeded: members.count))
        for member in members { writePlugin(member) }
    }

    mutating func readPluginMembers() throws -> [Member] {
        let count = try readPluginCount(minimumBytesEach: 40)
        var members: [Member] = []
        members.reserveCapacity(count)
        for _ in 0..<count { members.append(try readPluginMember()) }
        return members
    }

    mutating func writePlugin(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        writeInteger(seconds)
        writeInteger(attoseconds)
    }

    mutating func readPluginDuration() throws -> Duration {
        Duration(secondsComponent: try readPluginInteger(Int64.self), attosecondsComponent: try readPluginInteger(Int64.self))
    }

    mutating func writePluginBytes(_ bytes: ByteBuffer) {
        writeInteger(UInt32(truncatingIfNeeded: bytes.readableBytes))
        var copy = bytes
        writeBuffer(&copy)
    }

    mutating func readPluginBytes() throws -> ByteBuffer {
        let count = try readPluginInteger(UInt32.self)
        guard let slice = readSlice(length: Int(count)) else { throw PluginValue.malformed("a byte string longer than the input") }
        return slice
    }

    mutating func readPluginInteger<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        guard let value = readInteger(as: T.self) else { throw PluginValue.malformed("ends inside a number") }
        return value
    }

    /// Reads a UInt32 count of items that each take at least `minimumBytesEach` bytes.
    mutating func readPluginCount(minimumBytesEach: Int) throws -> Int {
        let count = Int(try readPluginInteger(UInt32.self))
        guard count <= readableBytes / max(1, minimumBytesEach) else {
            throw PluginValue.malformed("\(count) items in \(readableBytes) bytes")
        }
        return count
    }

    // MARK: messages

    mutating func writePlugin(_ message: OutboundMessage) {
        writeInteger(message.type.rawValue)
        writeInteger(message.codec.rawValue)
        writeInteger(message.options.guarantee.rawValue)
        writePlugin(message.options.timeout)
        writeInteger(message.options.flags)
        writeInteger(QueuePolicy.allCases.firstIndex(of: message.queuePolicy).map(UInt8.init) ?? 0)
        writeInteger(Int64(message.queueLimit))
        writePluginBytes(message.payload)
    }

    mutating func readPluginOutbound() throws -> OutboundMessage {
        let type = MessageType(try readPluginInteger(UInt32.self))
        let codec = CodecID(rawValue: try readPluginInteger(UInt8.self))
        guard let guarantee = DeliveryGuarantee(rawValue: try readPluginInteger(UInt8.self)) else { throw PluginValue.malformed("a delivery guarantee") }
        let timeout = try readPluginDuration()
        let flags = try readPluginInteger(UInt32.self)
        let policyIndex = Int(try readPluginInteger(UInt8.self))
        guard policyIndex < QueuePolicy.allCases.count else { throw PluginValue.malformed("a queue policy") }
        let limit = try readPluginInteger(Int64.self)
        let payload = try readPluginBytes()
        return OutboundMessage(
            type: type, codec: codec, payload: payload,
            options: SendOptions(guarantee: guarantee, timeout: timeout, flags: flags),
            queuePolicy: QueuePolicy.allCases[policyIndex],
            queueLimit: Int(clamping: limit)
        )
    }

    mutating func writePlugin(_ message: InboundMessage) {
        writePlugin(message.sender)
        writeInteger(message.type.rawValue)
        writeInteger(message.codec.rawValue)
        writeInteger(message.guarantee.rawValue)
        writeInteger(message.flags)
        writePluginBytes(message.payload)
    }

    mutating func readPluginInbound() throws -> InboundMessage {
        let sender = try readPluginMember()
        let type = MessageType(try readPluginInteger(UInt32.self))
        let codec = CodecID(rawValue: try readPluginInteger(UInt8.self))
        guard let guarantee = DeliveryGuarantee(rawValue: try readPluginInteger(UInt8.self)) else { throw PluginValue.malformed("a delivery guarantee") }
        let flags = try readPluginInteger(UInt32.self)
        let payload = try readPluginBytes()
        return InboundMessage(sender: sender, type: type, codec: codec, payload: payload, guarantee: guarantee, flags: flags)
    }

    // MARK: results

    mutating func writePlugin(_ outcome: MemberOutcome) {
        switch outcome {
        case .queued: writeInteger(UInt8(0))
        case .delivered: writeInteger(UInt8(1))
        case .connectionFailed(let why): writeInteger(UInt8(2)); writeLengthPrefixedString(why)
        case .timedOut: writeInteger(UInt8(3))
        case .remoteFailure(let why): writeInteger(UInt8(4)); writeLengthPrefixedString(why)
        case .queueFull: writeInteger(UInt8(5))
        case .notAMember: writeInteger(UInt8(6))
        case .rejected(let why): writeInteger(UInt8(7)); writeLengthPrefixedString(why)
        }
    }

    mutating func readPluginOutcome() throws -> MemberOutcome {
        switch try readPluginInteger(UInt8.self) {
        case 0: return .queued
        case 1: return .delivered
        case 2: return .connectionFailed(try readLengthPrefixedStringChecked())
        case 3: return .timedOut
        case 4: return .remoteFailure(try readLengthPrefixedStringChecked())
        case 5: return .queueFull
        case 6: return .notAMember
        case 7: return .rejected(try readLengthPrefixedStringChecked())
        case let other: throw PluginValue.malformed("outcome \(other)")
        }
    }

    mutating func writePlugin(_ report: SendReport) {
        writeInteger(UInt32(truncatingIfNeeded: report.outcomes.count))
        for (member, outcome) in report.outcomes {
            writeInteger(member.high)
            writeInteger(member.low)
            writePlugin(outcome)
        }
    }

    mutating func readPluginReport() throws -> SendReport {
        let count = try readPluginCount(minimumBytesEach: 17)
        var outcomes: [(member: MemberID, outcome: MemberOutcome)] = []
        outcomes.reserveCapacity(count)
        for _ in 0..<count {
            let id = MemberID(high: try readPluginInteger(UInt64.self), low: try readPluginInteger(UInt64.self))
            outcomes.append((id, try readPluginOutcome()))
        }
        return SendReport(outcomes: outcomes)
    }

    mutating func writePlugin(_ result: DeliveryResult) {
        switch result {
        case .processed: writeInteger(UInt8(0))
        case .handlerFailed(let why): writeInteger(UInt8(1)); writeLengthPrefixedString(why)
        case .rejected(let why): writeInteger(UInt8(2)); writeLengthPrefixedString(why)
        }
    }

    mutating func readPluginDeliveryResult() throws -> DeliveryResult {
        switch try readPluginInteger(UInt8.self) {
        case 0: return .processed
        case 1: return .handlerFailed(try readLengthPrefixedStringChecked())
        case 2: return .rejected(try readLengthPrefixedStringChecked())
        case let other: throw PluginValue.malformed("delivery result \(other)")
        }
    }

    mutating func writePlugin(_ result: FailureDetectorState.ProbeResult) {
        switch result {
        case .alive: writeInteger(UInt8(0))
        case .refused: writeInteger(UInt8(1))
        case .timedOut: writeInteger(UInt8(2))
        }
    }

    mutating func readPluginProbeResult() throws -> FailureDetectorState.ProbeResult {
        switch try readPluginInteger(UInt8.self) {
        case 0: return .alive
        case 1: return .refused
        case 2: return .timedOut
        case let other: throw PluginValue.malformed("probe result \(other)")
        }
    }

    mutating func writePlugin(_ event: DiscoveryEvent) {
        switch event {
        case .candidates(let endpoints):
            writeInteger(UInt8(0))
            writeInteger(UInt32(truncatingIfNeeded: endpoints.count))
            for endpoint in endpoints { writePlugin(endpoint) }
        case .alive(let member):
            writeInteger(UInt8(1))
            writePlugin(member)
        case .gone(let id):
            writeInteger(UInt8(2))
            writeInteger(id.high)
            writeInteger(id.low)
        }
    }

    mutating func readPluginDiscoveryEvent() throws -> DiscoveryEvent {
        switch try readPluginInteger(UInt8.self) {
        case 0:
            let count = try readPluginCount(minimumBytesEach: 12)
            var endpoints: [Endpoint] = []
            endpoints.reserveCapacity(count)
            for _ in 0..<count { endpoints.append(try readPluginEndpoint()) }
            return .candidates(endpoints)
        case 1: return .alive(try readPluginMember())
        case 2: return .gone(MemberID(high: try readPluginInteger(UInt64.self), low: try readPluginInteger(UInt64.self)))
        case let other: throw PluginValue.malformed("discovery event \(other)")
        }
    }
}
