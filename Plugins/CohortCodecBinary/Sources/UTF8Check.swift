/// A UTF-8 well-formedness check over raw bytes (Unicode table 3-7: no overlong forms, no
/// surrogates, nothing above U+10FFFF), with a fast path for ASCII.
import CohortCore

enum UTF8Check {
    /// Whether `bytes` are well-formed UTF-8.
    static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let count = bytes.count
        var index = 0
        while index < count {
            let lead = bytes[index]
            if lead < 0x80 {
                index += 1
                continue
            }
            let size: Int
            var low: UInt8 = 0x80
            var high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: size = 2
            case 0xE0: size = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: size = 3
            case 0xED: size = 3; high = 0x9F
            case 0xF0: size = 4; low = 0x90
            case 0xF1...0xF3: size = 4
            case 0xF4: size = 4; high = 0x8F
            default: return false
            }
            guard size <= count - index else { return false }
            let second = bytes[index + 1]
            guard second >= low, second <= high else { return false }
            var next = index + 2
            while next < index + size {
                guard bytes[next] & 0xC0 == 0x80 else { return false }
                next += 1
            }
            index += size
        }
        return true
    }
}
