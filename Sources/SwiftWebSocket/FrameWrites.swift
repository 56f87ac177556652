/// The connection core's write path: a message framed (and compressed) by
/// the engine and handed to the driver's `write` as header and payload, so
/// a payload is never copied to sit behind its header. `write` must not
/// touch the engine (it is under access here): the core ends the transport
/// of a failed write after the call returns.
extension ServerProtocol {
    typealias Write = (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void

    /// Writes the control frames the engine queued (pongs, a close).
    mutating func writePendingOutput(to write: Write) throws {
        guard !pendingOutput.isEmpty else { return }
        defer { pendingOutput.removeAll(keepingCapacity: true) }
        try pendingOutput.withUnsafeBytes { bytes in
            try write(bytes, UnsafeRawBufferPointer(start: nil, count: 0))
        }
    }

    /// Writes `frame` (from `prepareMessage` or `prepareFragment`) with its
    /// `payload`, behind whatever control frames are pending.
    mutating func writeFrame(_ frame: OutgoingFrame, _ payload: UnsafeRawBufferPointer,
                             to write: Write) throws {
        try writePendingOutput(to: write)
        if frame.isCompressed {
            defer { compressedPayloadWritten() }
            try frame.header.withUnsafeBytes { header in
                try compressedPayload.withUnsafeBytes { body in try write(header, body) }
            }
        } else {
            try frame.header.withUnsafeBytes { header in try write(header, payload) }
        }
    }

    /// Writes a broadcast's message, framed (and compressed) once per child
    /// for every member with the same parameters. False if the connection
    /// no longer sends.
    mutating func writeShared(_ shared: SharedMessage, to write: Write) throws -> Bool {
        guard let frame = prepareShared(shared) else { return false }
        try writePendingOutput(to: write)
        try frame.header.withUnsafeBytes { header in
            if let compressed = frame.compressedPayload {
                try compressed.withUnsafeBytes { body in try write(header, body) }
            } else {
                try shared.message.withPayload { body in try write(header, body) }
            }
        }
        return true
    }
}
