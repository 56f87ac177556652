@testable import SwiftWebSocket

/// How a test frame encodes its payload length (RFC 6455 section 5.2).
enum LengthEncoding {
    /// The shortest form, as a conforming client would send.
    case minimal
    /// 7-bit length in the second byte (payload must be <= 125).
    case short
    /// 126 followed by a 16-bit length.
    case extended16
    /// 127 followed by a 64-bit length.
    case extended64
}

/// Builds a client-to-server frame: masked with `maskKey` unless it is nil.
/// `announcedLength` overrides the length written into the header (to
/// announce more bytes than are supplied).
func clientFrame(
    fin: Bool = true,
    rsv: UInt8 = 0,
    opcode: UInt8,
    payload: [UInt8] = [],
    maskKey: [UInt8]? = [0x37, 0xFA, 0x21, 0x3D],
    length: LengthEncoding = .minimal,
    announcedLength: UInt64? = nil
) -> [UInt8] {
    var frame: [UInt8] = [(fin ? 0x80 : 0) | (rsv & 0x07) << 4 | (opcode & 0x0F)]
    let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
    let count = announcedLength ?? UInt64(payload.count)
    var encoding = length
    if encoding == .minimal {
        encoding = count < 126 ? .short : count <= 0xFFFF ? .extended16 : .extended64
    }
    switch encoding {
    case .minimal, .short:
        frame.append(maskBit | UInt8(count))
    case .extended16:
        frame.append(maskBit | 126)
        frame.append(UInt8(truncatingIfNeeded: count >> 8))
        frame.append(UInt8(truncatingIfNeeded: count))
    case .extended64:
        frame.append(maskBit | 127)
        for i in 0..<8 { frame.append(UInt8(truncatingIfNeeded: count >> (8 * (7 - i)))) }
    }
    if let maskKey {
        frame.append(contentsOf: maskKey)
        for (i, byte) in payload.enumerated() { frame.append(byte ^ maskKey[i % 4]) }
    } else {
        frame.append(contentsOf: payload)
    }
    return frame
}

/// Convenience opcodes for `clientFrame`.
enum Op {
    static let continuation: UInt8 = 0x0
    static let text: UInt8 = 0x1
    static let binary: UInt8 = 0x2
    static let close: UInt8 = 0x8
    static let ping: UInt8 = 0x9
    static let pong: UInt8 = 0xA
}

func textFrame(_ text: String, fin: Bool = true) -> [UInt8] {
    clientFrame(fin: fin, opcode: Op.text, payload: Array(text.utf8))
}

func closeFrame(code: UInt16?, reason: [UInt8] = []) -> [UInt8] {
    guard let code else { return clientFrame(opcode: Op.close) }
    return clientFrame(opcode: Op.close, payload: [UInt8(code >> 8), UInt8(code & 0xFF)] + reason)
}

/// The unmasked close frame the server sends for `code` with no reason.
func serverClose(_ code: UInt16) -> [UInt8] {
    [0x88, 0x02, UInt8(code >> 8), UInt8(code & 0xFF)]
}

extension ServerProtocol {
    /// The header `prepareMessage` frames `payload` with, or nil.
    mutating func messageHeader(opcode: Opcode, payload: [UInt8]) -> [UInt8]? {
        payload.withUnsafeBytes { prepareMessage(opcode: opcode, payload: $0) }
            .map { frame in frame.header.withUnsafeBytes { Array($0) } }
    }
}

extension Array where Element == UInt8 {
    /// A server frame header with its 7-bit length replaced.
    func replacingLength(_ length: UInt8) -> [UInt8] {
        var copy = self
        copy[1] = length
        return copy
    }
}

/// A deterministic generator (xorshift64*) so random tests repeat exactly.
struct XorShift: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}

/// Wraps a `ServerProtocol` for tests: feeds bytes, drains events and output.
struct Harness {
    var engine: ServerProtocol

    init(limits: Limits = Limits(), compression: PerMessageDeflate? = nil) {
        engine = ServerProtocol(limits: limits, compression: compression)
    }

    var state: ServerProtocol.State { engine.state }

    /// Feeds `bytes` in one call and returns every event now available.
    @discardableResult
    mutating func feed(_ bytes: [UInt8]) -> [ServerProtocol.Event] {
        engine.receive(bytes)
        return drain()
    }

    /// Feeds `bytes` in pieces of `chunkSize` bytes, one receive call each.
    @discardableResult
    mutating func feed(_ bytes: [UInt8], chunkSize: Int) -> [ServerProtocol.Event] {
        var events: [ServerProtocol.Event] = []
        var start = 0
        while start < bytes.count {
            let end = min(start + chunkSize, bytes.count)
            engine.receive(Array(bytes[start..<end]))
            events += drain()
            start = end
        }
        return events
    }

    /// Feeds `bytes` in pieces of random size in 1...maxChunk.
    @discardableResult
    mutating func feed(_ bytes: [UInt8], randomChunksUpTo maxChunk: Int, using rng: inout XorShift) -> [ServerProtocol.Event] {
        var events: [ServerProtocol.Event] = []
        var start = 0
        while start < bytes.count {
            let end = min(start + Int.random(in: 1...maxChunk, using: &rng), bytes.count)
            engine.receive(Array(bytes[start..<end]))
            events += drain()
            start = end
        }
        return events
    }

    /// Takes every event, answering a close as the default driver does:
    /// with the peer's code.
    mutating func drain() -> [ServerProtocol.Event] {
        var events: [ServerProtocol.Event] = []
        while let event = engine.nextEvent() {
            events.append(event)
            if case .close(let code, _) = event, engine.state == .closeReceived {
                engine.close(code: code)
            }
        }
        return events
    }

    /// The bytes waiting to be written; clears them as a driver would.
    mutating func takeOutput() -> [UInt8] {
        let output = engine.pendingOutput
        engine.pendingOutput.removeAll(keepingCapacity: true)
        return output
    }
}

/// Runs `bytes` through a fresh engine in one receive call.
func run(_ bytes: [UInt8], limits: Limits = Limits()) -> (events: [ServerProtocol.Event], output: [UInt8], state: ServerProtocol.State) {
    var harness = Harness(limits: limits)
    let events = harness.feed(bytes)
    return (events, harness.takeOutput(), harness.state)
}
