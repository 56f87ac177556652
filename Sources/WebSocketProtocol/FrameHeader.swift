/// The fixed part of a frame (RFC 6455 section 5.2): flags, opcode, length
/// and masking key. Parsing validates everything that can be judged from the
/// header alone, so a bad frame fails before any of its payload is read.
package struct FrameHeader: Equatable, Sendable {
    package var fin: Bool
    /// RSV1-RSV3 as the top three bits of the first byte (0x70 mask).
    package var reservedBits: UInt8
    package var opcode: Opcode
    package var payloadLength: UInt64
    /// Nil for an unmasked frame (only valid from a server).
    package var maskingKey: MaskingKey?

    package static let rsv1: UInt8 = 0x40

    package enum ParseResult: Equatable {
        /// At least this many bytes are needed before the header can be read.
        case needMore(Int)
        case header(FrameHeader, length: Int)
    }

    /// Reads a client frame's header from the start of `bytes`.
    /// - Parameter allowedReservedBits: the RSV bits a negotiated extension
    ///   gives meaning to; any other set bit fails the connection.
    package static func parseClientFrame(_ bytes: UnsafeRawBufferPointer, allowedReservedBits: UInt8) throws(ProtocolViolation) -> ParseResult {
        guard bytes.count >= 2 else { return .needMore(2) }
        let first = bytes[0], second = bytes[1]
        let reserved = first & 0x70
        guard reserved & ~allowedReservedBits == 0 else { throw .reservedBitsSet }
        guard let opcode = Opcode(rawValue: first & 0x0F) else { throw .reservedOpcode(first & 0x0F) }
        let fin = first & 0x80 != 0
        guard second & 0x80 != 0 else { throw .unmaskedFrame }

        let shortLength = UInt64(second & 0x7F)
        let lengthBytes = shortLength == 126 ? 2 : shortLength == 127 ? 8 : 0
        let headerLength = 2 + lengthBytes + 4
        if opcode.isControl {
            guard fin else { throw .fragmentedControlFrame }
            guard shortLength <= 125 else { throw .controlFrameTooLong(shortLength) }
        }
        guard bytes.count >= headerLength else { return .needMore(headerLength) }

        var length = shortLength
        if lengthBytes > 0 {
            length = 0
            for i in 0..<lengthBytes { length = length << 8 | UInt64(bytes[2 + i]) }
            guard length & (1 << 63) == 0 else { throw .invalidPayloadLength }
        }
        let k = 2 + lengthBytes
        let key = MaskingKey(bytes[k], bytes[k + 1], bytes[k + 2], bytes[k + 3])
        // Reserved bits on control frames are never allowed, even with an
        // extension: permessage-deflate only compresses data frames.
        if opcode.isControl && reserved != 0 { throw .reservedBitsSet }
        return .header(
            FrameHeader(fin: fin, reservedBits: reserved, opcode: opcode, payloadLength: length, maskingKey: key),
            length: headerLength)
    }
}

/// A server frame's header, encoded into inline storage so sending a message
/// allocates nothing for it.
public struct EncodedFrameHeader: Sendable {
    private var storage: (UInt64, UInt16) = (0, 0)
    public private(set) var count: Int = 0

    /// Server frames are never masked.
    package init(fin: Bool, reservedBits: UInt8 = 0, opcode: Opcode, payloadLength: Int) {
        let length = UInt64(payloadLength)
        var encoded: (UInt64, UInt16) = (0, 0)
        let headerLength = length < 126 ? 2 : length <= 0xFFFF ? 4 : 10
        withUnsafeMutableBytes(of: &encoded) { raw in
            raw[0] = (fin ? 0x80 : 0) | reservedBits | opcode.rawValue
            if length < 126 {
                raw[1] = UInt8(length)
            } else if length <= 0xFFFF {
                raw[1] = 126
                raw[2] = UInt8(length >> 8)
                raw[3] = UInt8(length & 0xFF)
            } else {
                raw[1] = 127
                for i in 0..<8 { raw[2 + i] = UInt8(truncatingIfNeeded: length >> (8 * (7 - i))) }
            }
        }
        storage = encoded
        count = headerLength
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: storage) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }
}
