import Synchronization

/// One broadcast's message on its way to many connections of this process:
/// each member's outbox holds the same object, so its bytes are held once,
/// and it is compressed once per set of deflate parameters among the
/// members (by whichever member's driver needs it first) instead of once
/// per member.
///
/// The compressed form comes from a fresh zlib stream: it refers to nothing
/// sent before it, so any connection that agreed the same parameters can
/// send it whatever it sent earlier (`PerMessageDeflateCodec.sharedEncoding`).
package final class SharedMessage: SharedPayload {
    package let message: Message
    /// The compressed payloads made so far; nil where zlib failed.
    private let compressed = Mutex<[CompressorParameters: [UInt8]?]>([:])

    /// Charged to the child's memory budget once, however many outboxes
    /// hold it (the bytes exist already: room is made, not refused).
    package init(_ message: Message) {
        self.message = message
        MemoryBudget.shared.force(message.byteCount)
    }

    deinit {
        let compressedBytes = compressed.withLock { $0.values.reduce(0) { $0 + ($1?.count ?? 0) } }
        MemoryBudget.shared.give(message.byteCount + compressedBytes)
    }

    /// What a compressed frame of this message carries for connections
    /// compressing with `parameters`; nil when zlib failed (the message
    /// then goes out uncompressed).
    package func compressedPayload(_ parameters: CompressorParameters) -> [UInt8]? {
        compressed.withLock { made in
            if let payload = made[parameters] { return payload }
            let payload = compress(with: parameters)
            MemoryBudget.shared.force(payload?.count ?? 0)
            made[parameters] = payload
            return payload
        }
    }

    private func compress(with parameters: CompressorParameters) -> [UInt8]? {
        guard let deflater = Deflater(windowBits: parameters.windowBits, memoryLevel: parameters.memoryLevel,
                                      level: parameters.level) else { return nil }
        var payload: [UInt8] = []
        let compressed = message.withPayload { bytes in deflater.compress(bytes, into: &payload) }
        return compressed ? payload : nil
    }
}
