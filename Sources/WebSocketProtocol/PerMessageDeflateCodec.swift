/// permessage-deflate (RFC 7692) as a `MessageExtension`, with the
/// parameters the handshake agreed: RSV1 marks a compressed message, which
/// is inflated as it arrives; messages from `minimumSize` bytes are sent
/// deflated. One per connection: it owns that connection's zlib streams.
package final class PerMessageDeflateCodec: MessageExtension {
    private let parameters: PerMessageDeflate
    /// Created on the first compressed message; dropped after each one when
    /// the client resets its context anyway (client_no_context_takeover).
    private var inflater: Inflater?
    /// Created on the first compressed send; dropped after each one with
    /// server_no_context_takeover, so idle connections hold no zlib memory.
    private var deflater: Deflater?

    package init(_ parameters: PerMessageDeflate) {
        self.parameters = parameters
    }

    package var reservedBits: UInt8 { FrameHeader.rsv1 }

    /// DEFLATE expands at most about 1,032 times, so a KiB inflates to about
    /// a MiB.
    package var decodeSlice: Int { 1024 }

    /// DEFLATE adds at most about 0.1% to what it cannot compress.
    package func maxEncodedSize(forMessageLimit limit: UInt64) -> UInt64 {
        limit &+ limit / 512 &+ 64
    }

    package func decode(_ payload: UnsafeRawBufferPointer, into message: inout MessageBuffer,
                        limit: Int) -> DecodeOutcome {
        if inflater == nil { inflater = Inflater(windowBits: parameters.clientWindowBits) }
        guard let inflater else { return .unavailable }
        switch inflater.inflate(payload, into: &message, limit: limit) {
        case .ok: return .ok
        case .tooBig: return .tooBig
        case .invalid: return .invalid
        case .refused: return .refused
        }
    }

    /// The sender left out the empty stored block that ends its flush
    /// (RFC 7692 7.2.2): it is inflated here.
    package func endOfMessage(into message: inout MessageBuffer, limit: Int) -> DecodeOutcome {
        let outcome = Deflater.syncFlushTail.withUnsafeBytes { decode($0, into: &message, limit: limit) }
        if parameters.clientNoContextTakeover { inflater = nil }
        return outcome
    }

    /// Shorter messages cost more time to compress than the bytes it saves.
    package func encodes(byteCount: Int) -> Bool {
        byteCount >= parameters.minimumSize
    }

    /// A failed stream is dropped, so the next message starts afresh.
    package func encode(_ payload: UnsafeRawBufferPointer, endOfMessage: Bool, into output: inout [UInt8]) -> Bool {
        if deflater == nil {
            deflater = Deflater(windowBits: parameters.serverWindowBits,
                                memoryLevel: parameters.memoryLevel, level: parameters.compressionLevel)
        }
        guard let deflater, deflater.compress(payload, into: &output, endOfMessage: endOfMessage) else {
            self.deflater = nil
            return false
        }
        if endOfMessage && parameters.serverNoContextTakeover { self.deflater = nil }
        return true
    }

    /// The broadcast's compressed form comes from a fresh zlib stream and
    /// refers to nothing before it; the client's window now holds bytes our
    /// compressor never saw, so its context is dropped and the next message
    /// starts afresh.
    package func sharedEncoding(of shared: any SharedPayload) -> [UInt8]? {
        guard let payload = shared.compressedPayload(CompressorParameters(parameters)) else { return nil }
        deflater = nil
        return payload
    }
}
