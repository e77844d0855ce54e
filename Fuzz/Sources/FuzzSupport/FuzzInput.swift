/// Reads a fuzzer's input as a stream of choices: every read succeeds (zeros once the bytes are
/// used up), so a target can turn any input into a sequence of operations.
public struct FuzzInput {
    private let bytes: [UInt8]
    private var position = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Whether every byte was read.
    public var isAtEnd: Bool { position >= bytes.count }
    /// The bytes not read yet.
    public var rest: [UInt8] { position < bytes.count ? Array(bytes[position...]) : [] }

    public mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func bool() -> Bool { byte() & 1 == 1 }

    /// A number below `bound` (which must be positive).
    public mutating func below(_ bound: Int) -> Int { Int(byte()) % bound }

    public mutating func uint16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    public mutating func uint64() -> UInt64 {
        var value: UInt64 = 0
        for _ in 0..<8 { value = value << 8 | UInt64(byte()) }
        return value
    }

    public mutating func int64() -> Int64 { Int64(bitPattern: uint64()) }

    /// An integer that is small most of the time and sometimes an edge value.
    public mutating func interesting() -> UInt64 {
        switch byte() % 8 {
        case 0: return 0
        case 1: return 1
        case 2: return UInt64.max
        case 3: return UInt64(Int64.max)
        case 4: return UInt64(Int64.max) - 1
        case 5: return uint64()
        default: return UInt64(byte())
        }
    }

    /// Up to `limit` bytes.
    public mutating func bytes(upTo limit: Int) -> [UInt8] {
        let count = min(below(limit + 1), max(0, bytes.count - position))
        defer { position += count }
        return Array(bytes[position..<position + count])
    }
}

/// Stops the fuzzer with a finding when an invariant does not hold.
@inline(__always)
public func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) {
    if !condition() { fatalError("invariant violated: \(message())", file: file, line: line) }
}
