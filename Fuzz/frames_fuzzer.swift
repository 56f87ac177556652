/// libFuzzer target: the frame parser and message assembler (ServerProtocol)
/// on any byte stream from a client, with and without permessage-deflate.
///
/// Input: a configuration byte, a byte choosing how the stream is split
/// into reads (see `chunks`), then the client's bytes.
///
/// Configuration bits: 0 agrees permessage-deflate; then 1
/// client_no_context_takeover, 2-4 the client's window (8 + n bits); 5-7
/// the message size limit, small ones so that declared lengths past it are
/// met at every size. The split byte also picks the frame size and fragment
/// limits (bits 0-1 and 2-3): the whole and the split stream share them.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrames(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let configuration = input.byte()
    let seed = input.byte()
    let stream = input.rest()

    let limits = Limits(maxMessageSize: [0, 1, 2, 125, 126, 1000, 65535, 65536][Int(configuration >> 5)],
                        maxFrameSize: [nil, 1, 125, 1000][Int(seed & 3)],
                        maxFragmentsPerMessage: [100_000, 1, 2, 3][Int(seed >> 2 & 3)])
    let clientWindowBits = 8 + Int(configuration >> 2 & 7)
    let compression = configuration & 1 == 0 ? nil : PerMessageDeflate(
        // Our side follows from the client's so one byte covers both.
        serverWindowBits: max(clientWindowBits, 9), clientWindowBits: clientWindowBits,
        serverNoContextTakeover: clientWindowBits & 1 == 0, clientNoContextTakeover: configuration & 2 != 0,
        memoryLevel: 1 + clientWindowBits % 9, compressionLevel: clientWindowBits % 10, minimumSize: clientWindowBits & 4)

    // The stream in one read...
    var whole = Connection(limits: limits, compression: compression)
    whole.receive(stream)
    whole.check()

    // ...and split into reads, each message echoed as /echo does. The two
    // are compared only where zlib's verdict cannot depend on the split:
    // without compression, or with the full window (inflater_fuzzer.swift
    // says why).
    var split = Connection(limits: limits, compression: compression, echoes: true)
    for range in chunks(count: stream.count, seed: seed) {
        withExactCopy(stream, range) { split.receive($0) }
    }
    split.check()

    guard (compression?.clientWindowBits ?? 15) == 15 else { return 0 }
    invariant(split.events == whole.events, "events depend on how the stream is split: \(split.events) vs \(whole.events)")
    invariant(split.output == whole.output, "output depends on how the stream is split")
    invariant(split.engine.state == whole.engine.state, "state depends on how the stream is split")
    return 0
}

/// One connection as the driver runs it: every event taken as soon as it
/// is available, a peer's close answered with its own code, the output
/// collected as if written.
private struct Connection {
    var engine: ServerProtocol
    private(set) var events: [ServerProtocol.Event] = []
    private(set) var output: [UInt8] = []
    /// Decompresses what the echo sent, to compare with the message.
    private var echoInflater: Inflater?
    private let echoes: Bool

    init(limits: Limits, compression: PerMessageDeflate?, echoes: Bool = false) {
        engine = ServerProtocol(limits: limits, compression: compression)
        self.echoes = echoes
    }

    mutating func receive(_ bytes: UnsafeRawBufferPointer) {
        engine.receive(bytes)
        while let event = engine.nextEvent() {
            events.append(event)
            switch event {
            case .close(let code, _):
                invariant(engine.state == .closeReceived, "a close arrived in state \(engine.state)")
                engine.close(code: code)
            case .message(let message) where echoes:
                echo(message)
            default:
                break
            }
        }
        output += engine.pendingOutput
        engine.pendingOutput.removeAll(keepingCapacity: true)
    }

    /// Sends `message` back and checks that its frame carries it: the
    /// payload itself, or one that inflates to it.
    private mutating func echo(_ message: Message) {
        let (opcode, payload): (Opcode, [UInt8])
        switch message {
        case .text(let text): (opcode, payload) = (.text, Array(text.utf8))
        case .binary(let bytes): (opcode, payload) = (.binary, bytes)
        }
        guard let frame = payload.withUnsafeBytes({ engine.prepareMessage(opcode: opcode, payload: $0) }) else {
            fatalError("an open connection refused to send a message")
        }
        let header = frame.header.withUnsafeBytes { Array($0) }
        invariant(header[0] == 0x80 | (frame.isCompressed ? FrameHeader.rsv1 : 0) | opcode.rawValue,
                  "echo header \(header) for a \(opcode) frame, compressed: \(frame.isCompressed)")
        guard frame.isCompressed, let compression = engine.compression else {
            invariant(Self.payloadLength(header) == payload.count, "echo header \(header) for \(payload.count) bytes")
            return
        }
        let compressed = engine.compressedPayload
        invariant(Self.payloadLength(header) == compressed.count, "echo header \(header) for \(compressed.count) bytes")
        engine.compressedPayloadWritten()
        if echoInflater == nil { echoInflater = Inflater(windowBits: compression.serverWindowBits) }
        guard let inflater = echoInflater else { fatalError("zlib refused an inflater") }
        var inflated: [UInt8] = []
        let outcome = (compressed + Deflater.syncFlushTail).withUnsafeBytes {
            inflater.inflate($0, into: &inflated, limit: payload.count)
        }
        invariant(outcome == .ok && inflated == payload, "echo inflates to \(outcome) \(inflated), not \(payload)")
        if compression.serverNoContextTakeover { echoInflater = nil }
    }

    /// The payload length a server frame header announces.
    private static func payloadLength(_ header: [UInt8]) -> Int {
        switch header[1] {
        case 126: return Int(header[2]) << 8 | Int(header[3])
        case 127: return header[2...9].reduce(0) { $0 << 8 | Int($1) }
        case let short: return Int(short)
        }
    }

    /// What holds after any input: messages within the limit, a failure or
    /// close ends the connection and is the last event, every ping is
    /// answered, and the output is those pongs then at most one close
    /// frame with the code the events call for.
    func check() {
        var pings: [[UInt8]] = []
        var closePayload: [UInt8]?
        for (index, event) in events.enumerated() {
            switch event {
            case .message(.text(let text)):
                invariant(text.utf8.count <= engine.limits.maxMessageSize, "text of \(text.utf8.count) bytes")
            case .message(.binary(let bytes)):
                invariant(bytes.count <= engine.limits.maxMessageSize, "binary message of \(bytes.count) bytes")
            case .ping(let payload):
                invariant(payload.count <= 125, "ping of \(payload.count) bytes")
                pings.append(payload)
            case .pong(let payload):
                invariant(payload.count <= 125, "pong of \(payload.count) bytes")
            case .close(let code, _):
                invariant(code?.isValidOnWire ?? true, "close code \(String(describing: code)) accepted")
                closePayload = code.map { [UInt8($0.rawValue >> 8), UInt8($0.rawValue & 0xFF)] } ?? []
            case .failed(let violation):
                let code = violation.closeCode.rawValue
                closePayload = [UInt8(code >> 8), UInt8(code & 0xFF)]
            }
            if closePayload != nil {
                invariant(index == events.count - 1, "events after the connection ended: \(events)")
                invariant(engine.state == .closed, "state \(engine.state) after the connection ended")
            }
        }
        var frames: [(opcode: UInt8, payload: [UInt8])] = []
        var index = 0
        while index < output.count {
            invariant(index + 2 <= output.count && output[index] & 0xF0 == 0x80 && output[index + 1] <= 125,
                      "malformed output frame at \(index): \(output)")
            let end = index + 2 + Int(output[index + 1])
            invariant(end <= output.count, "output frame at \(index) cut short: \(output)")
            frames.append((output[index] & 0x0F, Array(output[index + 2..<end])))
            index = end
        }
        let expected = pings.map { (Opcode.pong.rawValue, $0) }
            + (closePayload.map { [(Opcode.close.rawValue, $0)] } ?? [])
        invariant(frames.elementsEqual(expected) { $0.opcode == $1.0 && $0.payload == $1.1 },
                  "output \(frames) for pings \(pings) and close \(String(describing: closePayload))")
    }
}
