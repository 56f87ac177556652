/// A complete data message, text kept distinct from binary.
public enum Message: Equatable, Sendable {
    case text(String)
    case binary([UInt8])
}

extension Message {
    package var opcode: Opcode {
        switch self {
        case .text: .text
        case .binary: .binary
        }
    }

    /// The payload's size on the wire, before compression.
    package var byteCount: Int {
        switch self {
        case .text(let text): text.utf8.count
        case .binary(let bytes): bytes.count
        }
    }

    /// Runs `body` over the payload's bytes (a text's UTF-8).
    package func withPayload<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        switch self {
        case .text(var text): try text.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
        case .binary(let bytes): try bytes.withUnsafeBytes(body)
        }
    }
}
