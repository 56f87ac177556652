/// Incremental UTF-8 validation that fails on the first byte that can never
/// be part of valid text (Autobahn 6.4.*: fail fast, not at the message end).
/// A sequence may be split across frames and reads; the state carries over.
package struct UTF8Validator: Sendable {
    /// Continuation bytes still expected for the current sequence.
    private var remaining: UInt8 = 0
    /// Range allowed for the next continuation byte. Only the first one after
    /// a lead byte is narrowed, to refuse overlong forms, surrogates and code
    /// points above U+10FFFF.
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    /// True when the bytes so far end on a character boundary.
    package var isComplete: Bool { remaining == 0 }

    package mutating func reset() { self = UTF8Validator() }

    /// Checks `bytes`; false as soon as a byte makes the text invalid.
    package mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let count = bytes.count
        var index = 0
        while index < count {
            if remaining == 0 {
                // Fast path: whole words of ASCII.
                while index + 8 <= count,
                      base.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                    index += 8
                }
                guard index < count else { break }
                let lead = bytes[index]
                index += 1
                switch lead {
                case 0x00...0x7F: continue
                case 0xC2...0xDF: remaining = 1; lower = 0x80; upper = 0xBF
                case 0xE0: remaining = 2; lower = 0xA0; upper = 0xBF
                case 0xE1...0xEC, 0xEE...0xEF: remaining = 2; lower = 0x80; upper = 0xBF
                case 0xED: remaining = 2; lower = 0x80; upper = 0x9F
                case 0xF0: remaining = 3; lower = 0x90; upper = 0xBF
                case 0xF1...0xF3: remaining = 3; lower = 0x80; upper = 0xBF
                case 0xF4: remaining = 3; lower = 0x80; upper = 0x8F
                default: return false
                }
            } else {
                let byte = bytes[index]
                guard byte >= lower && byte <= upper else { return false }
                index += 1
                remaining -= 1
                lower = 0x80
                upper = 0xBF
            }
        }
        return true
    }

    /// Convenience for whole buffers (close reasons, tests).
    package static func isValid(_ bytes: some Collection<UInt8>) -> Bool {
        var validator = UTF8Validator()
        let ok = Array(bytes).withUnsafeBytes { validator.validate($0) }
        return ok && validator.isComplete
    }
}
