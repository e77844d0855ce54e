import Cohort

/// Rendezvous (highest-random-weight) hashing: every node ranks the candidates for a key the
/// same way, with no coordination, and removing a member only moves the keys it held.
///
/// The hash is FNV-1a over the key's UTF-8 and the member id, finished with a 64-bit mixer; it
/// is the same in every process (unlike Swift's seeded `Hasher`).
enum Rendezvous {
    /// The weight of a member for a key.
    static func score(key: String, member: MemberID) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in key.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        for part in [member.high, member.low] {
            var value = part
            for _ in 0..<8 {
                hash = (hash ^ (value & 0xFF)) &* 0x0000_0100_0000_01B3
                value >>= 8
            }
        }
        // SplitMix64 finaliser: spreads FNV's weak low bits.
        hash = (hash ^ (hash >> 30)) &* 0xBF58_476D_1CE4_E5B9
        hash = (hash ^ (hash >> 27)) &* 0x94D0_49BB_1331_11EB
        return hash ^ (hash >> 31)
    }

    /// The candidates ranked for a key, best first.
    static func rank(_ key: String, among candidates: some Sequence<MemberID>) -> [MemberID] {
        candidates
            .map { (member: $0, score: score(key: key, member: $0)) }
            .sorted { $0.score != $1.score ? $0.score > $1.score : $0.member < $1.member }
            .map(\.member)
    }
}
