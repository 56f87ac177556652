/// A broadcast's message as many connections frame it: its bytes, held
/// once, and its compressed form, made once per set of compressor
/// parameters among them (in the library above: `SharedMessage`, which also
/// charges them to the memory budget).
package protocol SharedPayload: AnyObject, Sendable {
    var message: Message { get }
    /// What a compressed frame of the message carries for connections
    /// compressing with `parameters`: a fresh zlib stream, so any of them
    /// can send it whatever it sent before; nil where zlib failed.
    func compressedPayload(_ parameters: CompressorParameters) -> [UInt8]?
}

/// What decides the bytes a compressor makes: connections that agree on
/// these can share a message's compressed form.
package struct CompressorParameters: Hashable, Sendable {
    package var windowBits: Int
    package var memoryLevel: Int
    package var level: Int

    package init(_ compression: PerMessageDeflate) {
        windowBits = compression.serverWindowBits
        memoryLevel = compression.memoryLevel
        level = compression.compressionLevel
    }
}
