import CohortCore
import NIOCore

/// One open level of the value being written: a container whose count is not patched yet, or a
/// slot where a value is still to come.
final class BinaryFrame {
    /// What the level holds.
    enum Kind {
        /// A map; ``BinaryFrame/countOffset`` is its count slot.
        case keyed
        /// An array; ``BinaryFrame/countOffset`` is its count slot.
        case unkeyed
        /// A place reserved for one value (an encoder handed to `encode(to:)`). Closing it
        /// unfilled writes an empty map, as an `encode(to:)` that writes nothing means `{}`.
        case slot
    }

    let kind: Kind
    /// The index of this frame in the writer's stack; a container here nests `level + 1` deep.
    let level: Int
    /// Where the count of a container sits (its tag is the byte before).
    var countOffset: Int
    /// Whether the count slot is four bytes (`array`/`map`) rather than one (`array8`/`map8`).
    var wide = false
    /// Elements (or key/value pairs) written so far.
    var count: UInt32 = 0

    init(kind: Kind, level: Int, countOffset: Int) {
        self.kind = kind
        self.level = level
        self.countOffset = countOffset
    }

    /// A frame that is never open: what a container request gets after the writer failed.
    static func dead(_ kind: Kind) -> BinaryFrame {
        BinaryFrame(kind: kind, level: Int.max, countOffset: 0)
    }
}

/// The single-pass writer behind ``BinaryCodec``: owns the caller's buffer while a value is
/// encoded and keeps the stack of open levels.
///
/// Values are written in the order `Encodable` implementations produce them. Writing an element
/// of a container closes every level nested deeper (patching their counts), so the usual pattern
/// — finish a nested value, then go on with its parent — needs nothing special. Writing into a
/// container that has been closed that way (interleaving two sibling containers) is refused with
/// an `EncodingError`, never silently written wrong.
final class BinaryWriter {
    /// The buffer being appended to; swapped in from and back out to the caller.
    var buffer: ByteBuffer
    private var frames: [BinaryFrame] = []
    /// The first error raised where it could not be thrown (in a container request).
    private var failure: (any Error)?

    init() {
        buffer = ByteBuffer()
        frames.reserveCapacity(8)
    }

    // MARK: Structure

    /// Throws the error recorded by ``fail(_:)``, if any.
    @inline(__always)
    func check() throws {
        if let failure { throw failure }
    }

    /// Records an error to be thrown by the next write.
    func fail(_ error: any Error) {
        if failure == nil { failure = error }
    }

    /// Whether `frame` is still on the stack.
    @inline(__always)
    func isOpen(_ frame: BinaryFrame) -> Bool {
        frame.level < frames.count && frames[frame.level] === frame
    }

    /// Closes every level at `level` and deeper: patches container counts, fills empty slots.
    func close(downTo level: Int) {
        while frames.count > level {
            let frame = frames.removeLast()
            switch frame.kind {
            case .keyed, .unkeyed:
                if frame.wide {
                    buffer.setInteger(frame.count, at: frame.countOffset)
                } else {
                    buffer.setInteger(UInt8(truncatingIfNeeded: frame.count), at: frame.countOffset)
                }
            case .slot:
                buffer.writeMultipleIntegers(BinaryTag.map8.rawValue, UInt8(0))
            }
        }
    }

    /// Reserves a slot for one value at `level` (the stack must be exactly `level` deep).
    func openSlot(level: Int) -> BinaryFrame {
        let slot = BinaryFrame(kind: .slot, level: level, countOffset: buffer.writerIndex)
        frames.append(slot)
        return slot
    }

    /// Takes the slot for the value about to be written into it.
    func claim(_ slot: BinaryFrame, codingPath: @autoclosure () -> [any CodingKey]) throws {
        try check()
        guard isOpen(slot) else {
            throw misuse("the value was already written, or a sibling was written after it", codingPath())
        }
        close(downTo: slot.level + 1)
        frames.removeLast()
    }

    /// Writes a container header at `level` and opens it.
    func openContainer(_ kind: BinaryFrame.Kind, level: Int, codingPath: @autoclosure () -> [any CodingKey]) throws -> BinaryFrame {
        guard level < BinaryFormat.maxDepth else {
            let codingPath = codingPath()
            throw EncodingError.invalidValue(
                codingPath.last?.stringValue ?? "root",
                EncodingError.Context(
                    codingPath: codingPath,
                    debugDescription: "containers nest more than \(BinaryFormat.maxDepth) deep; the binary format refuses such values"
                )
            )
        }
        let frame = BinaryFrame(kind: kind, level: level, countOffset: buffer.writerIndex + 1)
        buffer.writeMultipleIntegers((kind == .unkeyed ? BinaryTag.array8 : BinaryTag.map8).rawValue, UInt8(0))
        frames.append(frame)
        return frame
    }

    /// Prepares the next element of an open container: closes deeper levels and counts it.
    func beginElement(of frame: BinaryFrame, codingPath: @autoclosure () -> [any CodingKey]) throws {
        try check()
        guard isOpen(frame) else {
            throw misuse("a container was written to after a sibling value had been written", codingPath())
        }
        close(downTo: frame.level + 1)
        guard frame.count < UInt32.max else {
            throw misuse("a container has more than \(UInt32.max) elements", codingPath())
        }
        if frame.count == BinaryFormat.smallCountLimit, !frame.wide { widen(frame) }
        frame.count += 1
    }

    /// Turns the open, innermost `array8`/`map8` into an `array`/`map`: moves its body up three
    /// bytes to make room for a four-byte count. Happens at most once per container.
    private func widen(_ frame: BinaryFrame) {
        let bodyStart = frame.countOffset + 1
        let bodyLength = buffer.writerIndex - bodyStart
        let readerIndex = buffer.readerIndex
        buffer.writeRepeatingByte(0, count: 3)
        buffer.withUnsafeMutableReadableBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            let from = base + (bodyStart - readerIndex)
            (from + 3).copyMemory(from: from, byteCount: bodyLength)
        }
        buffer.setInteger((frame.kind == .unkeyed ? BinaryTag.array : BinaryTag.map).rawValue, at: frame.countOffset - 1)
        frame.wide = true
    }

    /// Writes any value into the slot of an element just begun at `level`.
    func encode<Value: Encodable>(_ value: Value, level: Int, path: BinaryPath) throws {
        if writeDirect(value) { return }
        let slot = openSlot(level: level)
        try value.encode(to: BinaryValueEncoder(writer: self, slot: slot, path: path))
        try check()
        close(downTo: level)
    }

    /// Closes all levels after the root value; the buffer then holds exactly one value.
    func finish() throws {
        try check()
        close(downTo: 0)
    }

    private func misuse(_ what: String, _ codingPath: [any CodingKey]) -> EncodingError {
        EncodingError.invalidValue(
            codingPath.last?.stringValue ?? "root",
            EncodingError.Context(
                codingPath: codingPath,
                debugDescription: "\(what); the binary codec writes in one pass, so finish each nested container before going back to its parent"
            )
        )
    }

    // MARK: Primitives

    @inline(__always)
    func writeTag(_ tag: BinaryTag) {
        buffer.writeInteger(tag.rawValue)
    }

    /// An LEB128 varint without a tag, written with one buffer call.
    @inline(__always)
    func writeVarint(_ value: UInt64) {
        var scratch: (UInt64, UInt64) = (0, 0)
        let count = withUnsafeMutableBytes(of: &scratch) { Self.varint(value, into: $0, at: 0) }
        withUnsafeBytes(of: &scratch) { _ = buffer.writeBytes(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    /// A tag and an LEB128 varint, written with one buffer call.
    @inline(__always)
    func writeTagged(_ tag: BinaryTag, _ value: UInt64) {
        var scratch: (UInt64, UInt64) = (0, 0)
        let count = withUnsafeMutableBytes(of: &scratch) { raw -> Int in
            raw[0] = tag.rawValue
            return 1 + Self.varint(value, into: raw, at: 1)
        }
        withUnsafeBytes(of: &scratch) { _ = buffer.writeBytes(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    /// Puts the varint of `value` into `raw` at `start` (at most ten bytes); returns its size.
    @inline(__always)
    private static func varint(_ value: UInt64, into raw: UnsafeMutableRawBufferPointer, at start: Int) -> Int {
        var rest = value
        var index = start
        while rest >= 0x80 {
            raw[index] = UInt8(truncatingIfNeeded: rest) | 0x80
            rest >>= 7
            index += 1
        }
        raw[index] = UInt8(truncatingIfNeeded: rest)
        return index + 1 - start
    }

    func writeNil() {
        writeTag(.null)
    }

    func writeBool(_ value: Bool) {
        writeTag(value ? .trueValue : .falseValue)
    }

    func writeSigned(_ value: Int64) {
        writeTagged(.signed, BinaryFormat.zigzag(value))
    }

    func writeUnsigned(_ value: UInt64) {
        writeTagged(.unsigned, value)
    }

    /// The shortest exact form: `signed` for whole numbers, else `float32`.
    func writeFloat(_ value: Float) {
        if let whole = Self.wholeNumber(Double(value)) {
            writeSigned(whole)
        } else {
            buffer.writeMultipleIntegers(BinaryTag.float32.rawValue, value.bitPattern)
        }
    }

    /// The shortest exact form: `signed` for whole numbers, `float32` when a Float holds the
    /// value, else `float64`.
    func writeDouble(_ value: Double) {
        if let whole = Self.wholeNumber(value) {
            writeSigned(whole)
        } else if let narrow = Float(exactly: value) {
            buffer.writeMultipleIntegers(BinaryTag.float32.rawValue, narrow.bitPattern)
        } else {
            buffer.writeMultipleIntegers(BinaryTag.float64.rawValue, value.bitPattern)
        }
    }

    /// The value as an integer when it is whole, below 2^53 in magnitude and not -0.
    @inline(__always)
    private static func wholeNumber(_ value: Double) -> Int64? {
        guard value.magnitude < 0x1p53, value.sign == .plus || value != 0 else { return nil }
        return Int64(exactly: value)
    }

    func writeString(_ value: String) {
        writeTagged(.string, UInt64(value.utf8.count))
        buffer.writeString(value)
    }

    /// Raw bytes from any contiguous collection (`[UInt8]`, `Data`).
    func writeBytes<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        writeTagged(.bytes, UInt64(bytes.count))
        buffer.writeBytes(bytes)
    }

    /// The readable bytes of a buffer, without copying them anywhere else first.
    func writeBytes(_ bytes: ByteBuffer) {
        writeTagged(.bytes, UInt64(bytes.readableBytes))
        buffer.writeImmutableBuffer(bytes)
    }

    /// A map key: one varint, its low bit telling an integer key from a string (see ``BinaryTag``).
    func writeKey(_ key: some CodingKey) {
        if let number = BinaryFormat.integerKey(key) {
            writeVarint(BinaryFormat.zigzag(Int64(number)) << 1 | 1)
        } else {
            let text = key.stringValue
            writeVarint(UInt64(text.utf8.count) << 1)
            buffer.writeString(text)
        }
    }
}
