internal import CZlib

/// Raw DEFLATE compression over the system zlib, one message at a time,
/// ending each with a sync flush as RFC 7692 7.2.1 prescribes.
package final class Deflater {
    /// What a sync flush ends with: the empty stored block a sender strips
    /// from each compressed message and a receiver appends (RFC 7692 7.2.1).
    package static let syncFlushTail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]
    /// A whole empty stored block from a byte boundary: its header bits,
    /// then the tail.
    package static let emptyStoredBlock: [UInt8] = [0x00] + syncFlushTail

    private let stream: UnsafeMutablePointer<z_stream>

    /// `windowBits` 9...15 (zlib's raw deflate cannot do 8), `memoryLevel`
    /// 1...9, `level` 0...9; nil when zlib refuses them.
    package init?(windowBits: Int, memoryLevel: Int, level: Int) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = deflateInit2_(stream, Int32(level), Z_DEFLATED, -Int32(windowBits), Int32(memoryLevel),
                                   Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            stream.deallocate()
            return nil
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    /// Replaces `output` with the compressed form of `input`. At the end of
    /// a message the final 0x00 0x00 0xFF 0xFF the flush leaves is removed
    /// (RFC 7692 7.2.1); a fragment before the end keeps it, as it is part
    /// of the message's compressed bytes. False if zlib failed.
    ///
    /// zlib writes into the thread's scratch buffer and only what it
    /// produced is appended, and the input goes in in slices zlib's 32-bit
    /// counters can take: a large message costs its compressed size, not a
    /// cleared worst-case buffer.
    package func compress(_ input: UnsafeRawBufferPointer, into output: inout [UInt8], endOfMessage: Bool = true) -> Bool {
        output.removeAll(keepingCapacity: true)
        defer {
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
            stream.pointee.next_out = nil
        }
        let compressed = ZlibScratch.withBuffer { scratch in
            var offset = 0
            repeat {
                let slice = min(input.count - offset, Self.maximumSlice)
                stream.pointee.next_in = UnsafeMutablePointer(
                    mutating: input.baseAddress?.advanced(by: offset).assumingMemoryBound(to: Bytef.self))
                stream.pointee.avail_in = uInt(slice)
                offset += slice
                // A sync flush is complete when zlib left output room unused.
                repeat {
                    stream.pointee.next_out = scratch.baseAddress
                    stream.pointee.avail_out = uInt(scratch.count)
                    let status = deflate(stream, Z_SYNC_FLUSH)
                    guard status == Z_OK || status == Z_BUF_ERROR else { return false }
                    let produced = scratch.count - Int(stream.pointee.avail_out)
                    output.append(contentsOf: UnsafeBufferPointer(rebasing: scratch[0..<produced]))
                } while stream.pointee.avail_in > 0 || stream.pointee.avail_out == 0
            } while offset < input.count
            return true
        }
        guard compressed else { return false }
        if output.isEmpty && input.isEmpty {
            // Nothing in, nothing pending after an earlier flush: zlib
            // writes no block at all. An empty stored block says the same.
            output = Self.emptyStoredBlock
        }
        guard output.suffix(4).elementsEqual(Self.syncFlushTail) else { return false }
        if endOfMessage { output.removeLast(4) }
        return true
    }

    /// Input per call, within zlib's 32-bit `avail_in`.
    private static let maximumSlice = 1 << 30
}
