import CohortCore

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
    /// Where the UInt32 count of a container sits.
    let countOffset: Int
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
                buffer.setInteger(frame.count, at: frame.countOffset)
            case .slot:
                writeTag(.map)
                buffer.writeInteger(UInt32(0))
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
    func claim(_ slot: BinaryFrame, codingPath: [any CodingKey]) throws {
        try check()
        guard isOpen(slot) else {
            throw misuse("the value was already written, or a sibling was written after it", codingPath)
        }
        close(downTo: slot.level + 1)
        frames.removeLast()
    }

    /// Writes a container header at `level` and opens it.
    func openContainer(_ kind: BinaryFrame.Kind, level: Int, codingPath: [any CodingKey]) throws -> BinaryFrame {
        guard level < BinaryFormat.maxDepth else {
            throw EncodingError.invalidValue(
                codingPath.last?.stringValue ?? "root",
                EncodingError.Context(
                    codingPath: codingPath,
                    debugDescription: "containers nest more than \(BinaryFormat.maxDepth) deep; the binary format refuses such values"
                )
            )
        }
        writeTag(kind == .unkeyed ? .array : .map)
        let frame = BinaryFrame(kind: kind, level: level, countOffset: buffer.writerIndex)
        buffer.writeInteger(UInt32(0))
        frames.append(frame)
        return frame
    }

    /// Prepares the next element of an open container: closes deeper levels and counts it.
    func beginElement(of frame: BinaryFrame, codingPath: [any CodingKey]) throws {
        try check()
        guard isOpen(frame) else {
            throw misuse("a container was written to after a sibling value had been written", codingPath)
        }
        close(downTo: frame.level + 1)
        guard frame.count < UInt32.max else {
            throw misuse("a container has more than \(UInt32.max) elements", codingPath)
        }
        frame.count += 1
    }

    /// Writes any value into the slot of an element just begun at `level`.
    func encode<Value: Encodable>(_ value: Value, level: Int, codingPath: [any CodingKey]) throws {
        if writeDirect(value) { return }
        let slot = openSlot(level: level)
        try value.encode(to: BinaryValueEncoder(writer: self, slot: slot, codingPath: codingPath))
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

    /// An LEB128 varint without a tag.
    @inline(__always)
    func writeVarint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        buffer.writeInteger(UInt8(truncatingIfNeeded: rest))
    }

    func writeNil() {
        writeTag(.null)
    }

    func writeBool(_ value: Bool) {
        writeTag(value ? .trueValue : .falseValue)
    }

    func writeSigned(_ value: Int64) {
        writeTag(.signed)
        writeVarint(BinaryFormat.zigzag(value))
    }

    func writeUnsigned(_ value: UInt64) {
        writeTag(.unsigned)
        writeVarint(value)
    }

    func writeFloat(_ value: Float) {
        writeTag(.float32)
        buffer.writeInteger(value.bitPattern)
    }

    func writeDouble(_ value: Double) {
        writeTag(.float64)
        buffer.writeInteger(value.bitPattern)
    }

    func writeString(_ value: String) {
        writeTag(.string)
        writeVarint(UInt64(value.utf8.count))
        buffer.writeString(value)
    }

    /// Raw bytes from any contiguous collection (`[UInt8]`, `Data`).
    func writeBytes<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        writeTag(.bytes)
        writeVarint(UInt64(bytes.count))
        buffer.writeBytes(bytes)
    }

    /// The readable bytes of a buffer, without copying them anywhere else first.
    func writeBytes(_ bytes: ByteBuffer) {
        writeTag(.bytes)
        writeVarint(UInt64(bytes.readableBytes))
        buffer.writeImmutableBuffer(bytes)
    }

    /// A map key: `signed` for integer keys, `string` otherwise.
    func writeKey(_ key: some CodingKey) {
        if let number = BinaryFormat.integerKey(key) {
            writeSigned(Int64(number))
        } else {
            writeString(key.stringValue)
        }
    }
}
