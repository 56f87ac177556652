/// The client-to-server masking of RFC 6455 section 5.3, applied eight bytes
/// at a time: a byte loop costs about eight times as much on large messages.
package enum Masking {
    /// XORs `buffer` in place with `key`, starting `keyOffset` bytes into the
    /// key (a frame's payload may arrive in several reads). Returns the key
    /// offset for the byte after `buffer`.
    @inline(__always)
    package static func unmask(_ buffer: UnsafeMutableRawBufferPointer, key: MaskingKey, keyOffset: Int) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return keyOffset }
        let count = buffer.count
        let pattern = key.pattern(startingAt: keyOffset)
        var index = 0
        while index + 8 <= count {
            let word = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            base.storeBytes(of: word ^ pattern, toByteOffset: index, as: UInt64.self)
            index += 8
        }
        // `pattern` holds the key in memory order, so its low byte on a
        // little-endian machine is the next key byte; walk it for the tail.
        var tail = pattern.littleEndian
        while index < count {
            buffer[index] ^= UInt8(truncatingIfNeeded: tail)
            tail >>= 8
            index += 1
        }
        return (keyOffset + count) & 3
    }
}

/// The four masking-key bytes of a frame, in wire order.
package struct MaskingKey: Equatable, Sendable {
    package var bytes: (UInt8, UInt8, UInt8, UInt8)

    package init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8) { bytes = (b0, b1, b2, b3) }

    package static func == (lhs: MaskingKey, rhs: MaskingKey) -> Bool {
        lhs.bytes == rhs.bytes
    }

    package subscript(index: Int) -> UInt8 {
        switch index & 3 {
        case 0: return bytes.0
        case 1: return bytes.1
        case 2: return bytes.2
        default: return bytes.3
        }
    }

    /// Eight key bytes beginning at `offset`, laid out in memory in the order
    /// they apply to the payload.
    package func pattern(startingAt offset: Int) -> UInt64 {
        var pattern: UInt64 = 0
        withUnsafeMutableBytes(of: &pattern) { raw in
            for i in 0..<8 { raw[i] = self[offset + i] }
        }
        return pattern
    }
}
