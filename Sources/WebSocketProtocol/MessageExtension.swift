/// A WebSocket extension that transforms data messages (RFC 6455 9), as the
/// frame logic sees it. `ServerProtocol` parses and checks frames, unmasks
/// their payload and keeps the limits; the payload of a message whose first
/// frame carries the extension's RSV bits goes through `decode`, and what
/// the server sends through `encode`. permessage-deflate is one
/// (`PerMessageDeflateCodec`); another would be a type of its own, leaving
/// the frame logic as it is.
package protocol MessageExtension: AnyObject {
    /// The RSV bits the extension sets on a message's first frame, all of
    /// them; a frame with any other RSV bit, or some of these only, fails
    /// the connection.
    var reservedBits: UInt8 { get }
    /// The most encoded payload decoded in one step of the parse (at least
    /// 1), so that a driver's turn can end between steps however much one
    /// step makes.
    var decodeSlice: Int { get }
    /// The most encoded bytes a message of `limit` decoded bytes can take:
    /// more fails the connection (1009) before its payload is decoded.
    func maxEncodedSize(forMessageLimit limit: UInt64) -> UInt64

    /// Decodes a piece of a marked message's payload (unmasked) onto
    /// `message`, which may hold at most `limit` bytes.
    func decode(_ payload: UnsafeRawBufferPointer, into message: inout MessageBuffer, limit: Int) -> DecodeOutcome
    /// The marked message's last frame has been decoded.
    func endOfMessage(into message: inout MessageBuffer, limit: Int) -> DecodeOutcome

    /// Whether a message of `byteCount` bytes is worth encoding.
    func encodes(byteCount: Int) -> Bool
    /// Encodes a whole message, or a fragment of one (`endOfMessage` false
    /// until its last), onto `output`; false if that failed (the message
    /// then goes out as it is, or a half-sent one ends the connection).
    func encode(_ payload: UnsafeRawBufferPointer, endOfMessage: Bool, into output: inout [UInt8]) -> Bool
    /// The encoded form of a broadcast's message that every connection
    /// encoding as this one shares, or nil to send it as it is.
    func sharedEncoding(of shared: any SharedPayload) -> [UInt8]?
}

/// What decoding a piece of a message came to.
package enum DecodeOutcome: Equatable {
    case ok
    /// The message would pass its size limit (1009).
    case tooBig
    /// The payload is not what the extension encodes (1007).
    case invalid
    /// The memory budget refused the room (1009, or 1013).
    case refused
    /// The extension cannot work at all here (zlib refused a stream: 1011).
    case unavailable
}
