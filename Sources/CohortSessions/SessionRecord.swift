import Cohort
import NIOCore

/// The replicated state of one session: every field with the stamp of the change that set it.
///
/// Fields merge independently (last writer wins per attribute, the latest access time wins),
/// so copies that saw the same changes in any order, any number of times, are equal.
/// Removed attributes stay as stamped `nil`s, so a late "set" cannot bring them back.
struct SessionRecord: ReplicatedEntry, Equatable {
    var id: String
    var creationTime: WallMillis
    var lastAccessedTime: WallMillis
    /// Idle limit in milliseconds; 0 or less never idles out.
    var maxInactive: Stamped<Int64>
    var absoluteExpiry: Stamped<WallMillis?>
    var principal: Stamped<String?>
    var attributes: [String: Stamped<ByteBuffer?>]
    var version: UInt64
    var latestStamp: Stamp

    /// When the session expires: idle limit after the last access, or the absolute deadline,
    /// whichever comes first. The sum saturates: an idle limit too large to add is "never".
    var deadline: WallMillis? {
        var result: WallMillis?
        if maxInactive.value > 0 { result = lastAccessedTime.addingSaturated(maxInactive.value) }
        if let absolute = absoluteExpiry.value { result = min(result ?? absolute, absolute) }
        return result
    }

    /// The attributes currently set.
    var liveAttributes: [String: ByteBuffer] {
        attributes.compactMapValues { $0.value }
    }

    static func creating(from delta: SessionDelta) -> SessionRecord? {
        guard let creation = delta.creation, !delta.invalidated else { return nil }
        var record = SessionRecord(
            id: delta.sessionID,
            creationTime: creation.creationTime,
            lastAccessedTime: creation.creationTime,
            maxInactive: Stamped(value: 0, stamp: .zero),
            absoluteExpiry: Stamped(value: nil, stamp: .zero),
            principal: Stamped(value: nil, stamp: .zero),
            attributes: [:],
            version: 0,
            latestStamp: .zero
        )
        _ = record.apply(delta)
        return record
    }

    mutating func apply(_ delta: SessionDelta) -> ApplyOutcome<SessionDelta> {
        if delta.invalidated { return .deleted }
        let stamp = delta.stamp
        var effective = SessionDelta(sessionID: delta.sessionID, stamp: stamp)
        var changed = false
        if let creation = delta.creation, creation.creationTime < creationTime || version == 0 {
            creationTime = creation.creationTime
            effective.creation = creation
            changed = true
        }
        if let time = delta.lastAccessedTime, time > lastAccessedTime {
            lastAccessedTime = time
            effective.lastAccessedTime = time
            changed = true
        }
        if let value = delta.maxInactive, stamp > maxInactive.stamp {
            maxInactive = Stamped(value: value, stamp: stamp)
            effective.maxInactive = value
            changed = true
        }
        if let change = delta.absoluteExpiry, stamp > absoluteExpiry.stamp {
            absoluteExpiry = Stamped(value: change.value, stamp: stamp)
            effective.absoluteExpiry = change
            changed = true
        }
        if let change = delta.principal, stamp > principal.stamp {
            principal = Stamped(value: change.value, stamp: stamp)
            effective.principal = change
            changed = true
        }
        for (name, value) in delta.attributes where stamp > (attributes[name]?.stamp ?? .zero) {
            attributes[name] = Stamped(value: value, stamp: stamp)
            effective.attributes[name] = value
            changed = true
        }
        if stamp.counter > version {
            version = stamp.counter
            changed = true
        }
        if stamp > latestStamp { latestStamp = stamp }
        if let newID = delta.newID, newID != id, stamp >= latestStamp {
            id = newID
            effective.newID = newID
            changed = true
        }
        return changed ? .changed(effective) : .unchanged
    }

    mutating func merge(_ other: SessionRecord) -> Bool {
        let before = self
        creationTime = min(creationTime, other.creationTime)
        lastAccessedTime = max(lastAccessedTime, other.lastAccessedTime)
        if other.maxInactive.stamp > maxInactive.stamp { maxInactive = other.maxInactive }
        if other.absoluteExpiry.stamp > absoluteExpiry.stamp { absoluteExpiry = other.absoluteExpiry }
        if other.principal.stamp > principal.stamp { principal = other.principal }
        for (name, slot) in other.attributes where slot.stamp > (attributes[name]?.stamp ?? .zero) {
            attributes[name] = slot
        }
        version = max(version, other.version)
        latestStamp = max(latestStamp, other.latestStamp)
        return self != before
    }

    var fingerprint: UInt64 {
        var sum = Fingerprint.of("@latest", latestStamp)
        sum = sum &+ Fingerprint.of("@maxInactive", maxInactive.stamp)
        sum = sum &+ Fingerprint.of("@absoluteExpiry", absoluteExpiry.stamp)
        sum = sum &+ Fingerprint.of("@principal", principal.stamp)
        for (name, slot) in attributes { sum = sum &+ Fingerprint.of(name, slot.stamp) }
        return sum
    }

    func conflicts(with other: SessionRecord) -> [String] {
        func clash(_ a: Stamp, _ b: Stamp) -> Bool { a.counter == b.counter && a.counter > 0 && a.origin != b.origin }
        var fields: [String] = []
        if clash(maxInactive.stamp, other.maxInactive.stamp) { fields.append("@maxInactive") }
        if clash(absoluteExpiry.stamp, other.absoluteExpiry.stamp) { fields.append("@absoluteExpiry") }
        if clash(principal.stamp, other.principal.stamp) { fields.append("@principal") }
        for (name, slot) in attributes {
            if let theirs = other.attributes[name], clash(slot.stamp, theirs.stamp) { fields.append(name) }
        }
        return fields.sorted()
    }
}
