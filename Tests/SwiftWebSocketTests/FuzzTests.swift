import Testing
@testable import SwiftWebSocket

/// Smoke fuzzing: arbitrary input must never trap the engine, and the
/// engine's invariants must hold whatever arrives.
@Suite struct FuzzTests {
    /// Checks what holds after any input: a failure or close ends the
    /// connection, and at most one close frame is ever queued.
    static func checkInvariants(_ events: [ServerProtocol.Event], _ engine: ServerProtocol, _ output: [UInt8]) -> Bool {
        let terminal = events.filter {
            switch $0 { case .failed, .close: return true; default: return false }
        }
        if terminal.count > 1 { return false }
        if !terminal.isEmpty && engine.state != .closed { return false }
        if let last = terminal.last, events.last != last { return false }
        // The output is a sequence of well-formed server frames with at most
        // one close frame, and that one last.
        var index = 0, closes = 0
        while index < output.count {
            guard index + 2 <= output.count, output[index + 1] < 126 else { return false }
            let opcode = output[index] & 0x0F
            if closes > 0 { return false }
            if opcode == 0x8 { closes += 1 } else if opcode != 0xA { return false }
            index += 2 + Int(output[index + 1])
        }
        return index == output.count
    }

    @Test func randomBuffersNeverTrap() {
        var rng = XorShift(seed: 0x5EED)
        var broken = 0
        var sawFailure = false
        for _ in 0..<20_000 {
            var h = Harness(limits: Limits(maxMessageSize: 1 << 16))
            let count = Int.random(in: 0...200, using: &rng)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let events = h.feed(bytes)
            if !Self.checkInvariants(events, h.engine, h.takeOutput()) { broken += 1 }
            for event in events {
                if case .failed = event { sawFailure = true }
            }
        }
        #expect(broken == 0)
        #expect(sawFailure)
    }

    /// Random input biased towards plausible frames (masked, small lengths,
    /// valid opcodes), fed in random chunks, so the parser goes deeper.
    @Test func plausibleFramesInRandomChunksNeverTrap() {
        var rng = XorShift(seed: 2024)
        let opcodes: [UInt8] = [0, 1, 2, 8, 9, 0xA, 3]
        var broken = 0
        var messages = 0
        for _ in 0..<5_000 {
            var stream: [UInt8] = []
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let payload = (0..<Int.random(in: 0...40, using: &rng)).map { _ in
                    Bool.random(using: &rng) ? UInt8.random(in: 0x20...0x7E, using: &rng) : UInt8.random(in: 0...255, using: &rng)
                }
                stream += clientFrame(
                    fin: Int.random(in: 0..<4, using: &rng) != 0,
                    rsv: Int.random(in: 0..<20, using: &rng) == 0 ? 1 : 0,
                    opcode: opcodes.randomElement(using: &rng)!,
                    payload: payload,
                    maskKey: (0..<4).map { _ in UInt8.random(in: 0...255, using: &rng) },
                    length: [LengthEncoding.minimal, .extended16, .extended64].randomElement(using: &rng)!)
            }
            var h = Harness(limits: Limits(maxMessageSize: 64))
            let events = h.feed(stream, randomChunksUpTo: 16, using: &rng)
            if !Self.checkInvariants(events, h.engine, h.takeOutput()) { broken += 1 }
            messages += events.filter { if case .message = $0 { return true } else { return false } }.count
        }
        #expect(broken == 0)
        #expect(messages > 0, "the generator reaches complete messages")
    }

    /// Same stream, any chunking: identical events and output.
    @Test func chunkingNeverChangesTheResult() {
        var rng = XorShift(seed: 99)
        var differing = 0
        for _ in 0..<2_000 {
            var stream: [UInt8] = []
            for _ in 0..<Int.random(in: 1...5, using: &rng) {
                let payload = (0..<Int.random(in: 0...30, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                stream += clientFrame(fin: Bool.random(using: &rng), opcode: [0, 1, 2, 8, 9, 0xA].randomElement(using: &rng)!,
                                      payload: payload, maskKey: [0x11, 0x22, 0x33, UInt8.random(in: 0...255, using: &rng)])
            }
            var whole = Harness()
            let expected = whole.feed(stream)
            let expectedOutput = whole.takeOutput()
            var split = Harness()
            let events = split.feed(stream, randomChunksUpTo: 7, using: &rng)
            if events != expected || split.takeOutput() != expectedOutput || split.state != whole.state { differing += 1 }
        }
        #expect(differing == 0)
    }
}
