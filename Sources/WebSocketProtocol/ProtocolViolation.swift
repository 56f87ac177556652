/// Why the engine failed a connection. Each case maps to the close code the
/// RFC asks for, so the driver never has to choose one itself.
public enum ProtocolViolation: Error, Equatable, Sendable, CustomStringConvertible {
    case reservedBitsSet
    case reservedOpcode(UInt8)
    case unmaskedFrame
    case fragmentedControlFrame
    case controlFrameTooLong(UInt64)
    /// The 64-bit length form with its most significant bit set.
    case invalidPayloadLength
    case unexpectedContinuation
    case expectedContinuation
    case closePayloadOfOneByte
    case invalidCloseCode(UInt16)
    case invalidUTF8
    case messageTooBig(limit: Int)
    case frameTooBig(limit: Int)
    case tooManyFragments(limit: Int)
    /// A compressed message that is not valid DEFLATE data.
    case invalidCompressedData
    /// zlib could not set up a decompressor (out of memory).
    case compressionUnavailable
    /// The child's memory budget (`SwiftWebSocketMemoryLimit`) cannot hold
    /// the message now: refused, or taken back for the connections holding
    /// the most. `closeCode` is 1009, or 1013 for a connection whose outbox
    /// held the most.
    case memoryBudgetExhausted(closeCode: CloseCode)
    /// A message still incomplete this long after its first frame came
    /// (`SwiftWebSocketMessageTimeout`).
    case messageTimeout(Duration)

    public var closeCode: CloseCode {
        switch self {
        case .invalidUTF8, .invalidCompressedData: return .invalidPayloadData
        case .messageTooBig, .frameTooBig, .tooManyFragments: return .messageTooBig
        case .compressionUnavailable: return .internalError
        case .memoryBudgetExhausted(let code): return code
        case .messageTimeout: return .policyViolation
        default: return .protocolError
        }
    }

    /// How loud a close for it is logged: the memory budget's closes are
    /// counted in its one warning per episode instead, not a line each.
    package var logLevel: LogLevel {
        if case .memoryBudgetExhausted = self { return .debug }
        return .info
    }

    public var description: String {
        switch self {
        case .reservedBitsSet: return "reserved bits set without a negotiated extension"
        case .reservedOpcode(let op): return "reserved opcode \(op)"
        case .unmaskedFrame: return "client frame not masked"
        case .fragmentedControlFrame: return "fragmented control frame"
        case .controlFrameTooLong(let n): return "control frame payload of \(n) bytes (at most 125)"
        case .invalidPayloadLength: return "64-bit payload length with the high bit set"
        case .unexpectedContinuation: return "continuation frame with no message in progress"
        case .expectedContinuation: return "new data frame while a fragmented message is in progress"
        case .closePayloadOfOneByte: return "close frame payload of one byte"
        case .invalidCloseCode(let code): return "close code \(code) is not allowed on the wire"
        case .invalidUTF8: return "text is not valid UTF-8"
        case .messageTooBig(let limit): return "message larger than the limit of \(limit) bytes"
        case .frameTooBig(let limit): return "frame larger than the limit of \(limit) bytes"
        case .tooManyFragments(let limit): return "message in more than \(limit) frames"
        case .invalidCompressedData: return "compressed message is not valid DEFLATE data"
        case .compressionUnavailable: return "could not allocate a zlib decompressor"
        case .memoryBudgetExhausted: return "the memory budget (SwiftWebSocketMemoryLimit) cannot hold it now"
        case .messageTimeout(let timeout): return "a message still incomplete \(timeout) after its first frame"
        }
    }
}
