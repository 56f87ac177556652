/// Splits a stream into the pieces successive reads would return, at
/// points drawn from one input byte: the same input splits the same way
/// every run, so a crash replays. The low three bits pick the largest
/// piece, from a byte at a time (every header split) to a 16 KiB read (the
/// driver's read buffer, WebSocket.readBufferSize).
func chunks(count: Int, seed: UInt8) -> [Range<Int>] {
    let largest = [1, 2, 3, 7, 16, 125, 1000, 16 * 1024][Int(seed & 7)]
    var state = UInt64(seed >> 3) &+ 0x9E37_79B9_7F4A_7C15
    var ranges: [Range<Int>] = []
    var start = 0
    while start < count {
        // xorshift64*: cheap, and fixed by the seed.
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        let size = 1 + Int((state &* 0x2545_F491_4F6C_DD1D) >> 33) % largest
        let end = min(start + size, count)
        ranges.append(start..<end)
        start = end
    }
    return ranges
}

/// Runs `body` on a copy of `bytes[range]` in an allocation of exactly its
/// size, freed afterwards: AddressSanitizer then reports a read past the
/// piece, or a pointer into it kept after the call.
func withExactCopy<Result>(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>,
                           _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: range.count, alignment: 1)
    defer { copy.deallocate() }
    copy.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[range]))
    return body(UnsafeRawBufferPointer(copy))
}
