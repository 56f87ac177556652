internal import CZlib

/// Raw DEFLATE decompression over the system zlib, bounded: output beyond
/// `limit` bytes stops it, so a small frame that would inflate to gigabytes
/// costs at most the limit plus one scratch buffer (ZlibScratch) of work.
package final class Inflater {
    package enum Outcome: Equatable {
        case ok
        /// The output would exceed the limit.
        case tooBig
        /// The input is not valid DEFLATE data.
        case invalid
        /// The output refused what zlib made (the memory budget).
        case refused
    }

    private let stream: UnsafeMutablePointer<z_stream>

    /// `windowBits` is the peer's LZ77 window (8...15); nil if zlib refuses
    /// (out of memory).
    package init?(windowBits: Int) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // Negative: raw DEFLATE, no zlib header. zlib's inflate accepts any
        // window from 8 up, and a larger window decodes a smaller one's data.
        guard inflateInit2_(stream, -Int32(max(windowBits, 9)), ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            stream.deallocate()
            return nil
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// Inflates all of `input`, appending to `output`. zlib writes into the
    /// thread's scratch buffer and only what it produced is appended: no
    /// room is reserved and cleared ahead of output that may never come.
    package func inflate<Output: InflateOutput>(_ input: UnsafeRawBufferPointer, into output: inout Output,
                                        limit: Int) -> Outcome {
        guard let base = input.baseAddress, input.count > 0 else { return .ok }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)  // at most one read's worth
        defer {
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
            stream.pointee.next_out = nil
        }
        return ZlibScratch.withBuffer { scratch in
            while true {
                if output.count > limit { return .tooBig }
                // At most one byte past the limit: enough to tell it was
                // passed (and no `+ 1` overflow when the limit is Int.max).
                let left = limit - output.count
                let room = left < scratch.count ? left + 1 : scratch.count
                let inputBefore = stream.pointee.avail_in
                stream.pointee.next_out = scratch.baseAddress
                stream.pointee.avail_out = uInt(room)
                let status = CZlib.inflate(stream, Z_SYNC_FLUSH)
                let produced = room - Int(stream.pointee.avail_out)
                guard output.appendInflated(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: scratch[0..<produced]))) else {
                    return .refused
                }
                switch status {
                case Z_OK, Z_BUF_ERROR:
                    // Done once all input is used and zlib had room to spare.
                    if stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0 {
                        return output.count > limit ? .tooBig : .ok
                    }
                    // No progress possible: the rest needs more input.
                    if produced == 0 && stream.pointee.avail_in == inputBefore { return .ok }
                case Z_STREAM_END:
                    // The peer ended the DEFLATE stream (BFINAL): what follows
                    // starts a new one (RFC 7692 7.2.3.3).
                    inflateReset(stream)
                    if stream.pointee.avail_in == 0 { return output.count > limit ? .tooBig : .ok }
                default:
                    // Output past the limit came before the bad data: say
                    // so, as a call that ended between the two would have.
                    return output.count > limit ? .tooBig : .invalid
                }
            }
        }
    }
}
