/// libFuzzer target: the bounded inflater (Inflater) on any raw DEFLATE
/// data, fed whole and in pieces as ServerProtocol feeds it a message's
/// frames and reads.
///
/// Input: a configuration byte, a byte choosing the split (see `chunks`),
/// then the compressed bytes. Configuration bits: 0-2 the window (8 + n
/// bits); 3 appends the 00 00 FF FF a sender strips from each message
/// (RFC 7692 7.2.2), as the engine does at a message's end; 4-7 the
/// output limit.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInflater(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let configuration = input.byte()
    let seed = input.byte()
    let windowBits = 8 + Int(configuration & 7)
    let limit = [0, 1, 2, 3, 100, 255, 256, 1000, 4095, 4096, 16 * 1024, 65535, 65536, 1 << 20, 1 << 24, Int.max][
        Int(configuration >> 4)]
    var compressed = Array(input.rest())
    if configuration & 8 != 0 { compressed += Deflater.syncFlushTail }

    let whole = inflate(compressed, windowBits: windowBits, limit: limit, pieces: [0..<compressed.count])
    switch whole.outcome {
    case .ok, .invalid:
        invariant(whole.output.count <= limit, "\(whole.output.count) bytes inflated under a limit of \(limit)")
    case .tooBig:
        // One byte past the limit tells it was passed; no more is made.
        invariant(whole.output.count == limit + 1, "\(whole.output.count) bytes inflated past a limit of \(limit)")
    case .refused:
        invariant(false, "an array refused inflated bytes")
    }

    // zlib takes a back-reference farther than a window under 15 bits if
    // it lands in output of the same call (the distance is checked against
    // the window plus that output): whether a stream invalid for its window
    // is refused depends on how much each call is given and makes. Only
    // with the full window is every distance judged the same way.
    guard windowBits == 15 else { return 0 }

    let split = inflate(compressed, windowBits: windowBits, limit: limit, pieces: chunks(count: compressed.count, seed: seed))
    invariant(split.outcome == whole.outcome && split.output == whole.output,
              "split input inflates to \(split.outcome) (\(split.output.count) bytes), whole to \(whole.outcome) (\(whole.output.count) bytes)")

    // The limit only stops inflating: up to it the output is the same as
    // with none. (Past `max_len` bytes of input there is no limit here: a
    // DEFLATE stream expands at most about 1032 times.)
    let unbounded = inflate(compressed, windowBits: windowBits, limit: .max, pieces: [0..<compressed.count])
    switch whole.outcome {
    case .ok:
        invariant(unbounded.outcome == .ok && unbounded.output == whole.output, "the limit changed the output")
    case .tooBig:
        invariant(unbounded.output.count > limit && unbounded.output.starts(with: whole.output),
                  "the limit changed the output before it")
    case .invalid:
        invariant(unbounded.outcome == .invalid && unbounded.output == whole.output, "the limit changed what is invalid")
    case .refused:
        invariant(false, "an array refused inflated bytes")
    }
    return 0
}

/// Inflates `pieces` of `compressed` in turn into one output, as the engine
/// does a message's frames, stopping at the first outcome other than `.ok`.
private func inflate(_ compressed: [UInt8], windowBits: Int, limit: Int,
                     pieces: [Range<Int>]) -> (outcome: Inflater.Outcome, output: [UInt8]) {
    guard let inflater = Inflater(windowBits: windowBits) else { fatalError("zlib refused an inflater") }
    var output: [UInt8] = []
    return compressed.withUnsafeBytes { bytes in
        for piece in pieces where !piece.isEmpty {
            let outcome = withExactCopy(bytes, piece) { inflater.inflate($0, into: &output, limit: limit) }
            if outcome != .ok { return (outcome, output) }
        }
        return (.ok, output)
    }
}
