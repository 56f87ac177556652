internal import CZlib

/// Raw DEFLATE decompression over the system zlib, bounded: output beyond
/// `limit` bytes stops it, so a small frame that would inflate to gigabytes
/// costs at most the limit plus one step of work and memory.
final class Inflater {
    enum Outcome: Equatable {
        case ok
        /// The output would exceed the limit.
        case tooBig
        /// The input is not valid DEFLATE data.
        case invalid
    }

    private let stream: UnsafeMutablePointer<z_stream>

    /// `windowBits` is the peer's LZ77 window (8...15); nil if zlib refuses
    /// (out of memory).
    init?(windowBits: Int) {
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

    /// Inflates all of `input`, appending to `output`.
    func inflate(_ input: UnsafeRawBufferPointer, into output: inout [UInt8], limit: Int) -> Outcome {
        guard let base = input.baseAddress, input.count > 0 else { return .ok }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        defer {
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
        }
        while true {
            if output.count > limit { return .tooBig }
            // Room for the likely output, at most one byte past the limit.
            let remaining = limit - output.count
            let room = min(max(input.count * 4, 4096), 256 * 1024, remaining < 256 * 1024 ? remaining + 1 : 256 * 1024)
            let start = output.count
            let inputBefore = stream.pointee.avail_in
            output.append(contentsOf: repeatElement(0, count: room))
            let status: Int32 = output.withUnsafeMutableBytes { raw in
                stream.pointee.next_out = raw.baseAddress!.advanced(by: start).assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(room)
                return CZlib.inflate(stream, Z_SYNC_FLUSH)
            }
            let produced = room - Int(stream.pointee.avail_out)
            output.removeLast(room - produced)
            stream.pointee.next_out = nil
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
                return .invalid
            }
        }
    }
}
