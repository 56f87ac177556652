/// How a named group's message travels on its broker channel: "sws1", a
/// kind byte ("t" text, "b" binary), then the payload. Anything else on the
/// channel was published by another program and is not delivered.
package enum BrokerEnvelope {
    private static let magic: [UInt8] = Array("sws1".utf8)
    private static let text = UInt8(ascii: "t")
    private static let binary = UInt8(ascii: "b")

    static func encode(_ message: Message) -> [UInt8] {
        var envelope = magic
        envelope.reserveCapacity(magic.count + 1 + message.byteCount)
        switch message {
        case .text(let string):
            envelope.append(text)
            envelope.append(contentsOf: string.utf8)
        case .binary(let bytes):
            envelope.append(binary)
            envelope.append(contentsOf: bytes)
        }
        return envelope
    }

    /// The message, or nil for bytes that are not an envelope (or text
    /// that is not UTF-8).
    static func decode(_ envelope: UnsafeRawBufferPointer) -> Message? {
        guard envelope.count > magic.count, envelope.prefix(magic.count).elementsEqual(magic) else { return nil }
        let payload = UnsafeRawBufferPointer(rebasing: envelope[(magic.count + 1)...])
        switch envelope[magic.count] {
        case text: return String(validating: payload, as: UTF8.self).map(Message.text)
        case binary: return .binary(Array(payload))
        default: return nil
        }
    }
}
