import Testing
@testable import SwiftWebSocket

/// The parts of the handler API beyond receive and send: fragmented sends,
/// pings, sends from other threads, keepalive, the request's facts.
@Suite struct HandlerAPITests {
    static func socket(_ io: MockIO, limits: Limits = Limits(), keepalive: Keepalive = Keepalive(),
                       compression: PerMessageDeflate? = nil) -> WebSocket {
        WebSocket(request: UpgradeRequest(resource: "/t"), subprotocol: nil, limits: limits,
                  keepalive: keepalive, compression: compression, io: io)
    }

    @Test func fragmentsGoOutAsContinuationFrames() throws {
        let io = MockIO([])
        let ws = Self.socket(io)
        try ws.sendFragment(text: "ab", isFinal: false)
        #expect(throws: WebSocketError.fragmentedMessageInProgress) { try ws.send(text: "interleaved") }
        #expect(throws: WebSocketError.fragmentedMessageInProgress) { try ws.sendFragment(binary: [1], isFinal: true) }
        try ws.sendFragment(text: "c", isFinal: false)
        try ws.sendFragment(text: "", isFinal: true)
        try ws.send(text: "next")
        #expect(io.written == [0x01, 0x02, 0x61, 0x62, 0x00, 0x01, 0x63, 0x80, 0x00, 0x81, 0x04] + Array("next".utf8))
    }

    @Test func compressedFragmentsInflateToTheMessage() throws {
        let compression = try #require(DeflateOptions().negotiate("permessage-deflate")?.0)
        let io = MockIO([])
        let ws = Self.socket(io, compression: compression)
        // An empty last piece too: zlib writes nothing for it by itself.
        let pieces = ["Hello, ", "fragmented ", "world", ""]
        for (index, piece) in pieces.enumerated() {
            try ws.sendFragment(text: piece, isFinal: index == pieces.count - 1)
        }
        // Parse the frames back: RSV1 on the first only, payloads concatenated.
        var bytes = io.written[...]
        var payload: [UInt8] = []
        var first = true
        while !bytes.isEmpty {
            let header = Array(bytes.prefix(2))
            #expect((header[0] & 0x40 != 0) == first)
            let length = Int(header[1] & 0x7F)
            payload += bytes.dropFirst(2).prefix(length)
            bytes = bytes.dropFirst(2 + length)
            first = false
        }
        let inflater = try #require(Inflater(windowBits: 15))
        var message: [UInt8] = []
        let outcome = (payload + Deflater.syncFlushTail).withUnsafeBytes {
            inflater.inflate($0, into: &message, limit: 1000)
        }
        #expect(outcome == .ok)
        #expect(String(decoding: message, as: UTF8.self) == "Hello, fragmented world")
    }

    @Test func pingCarriesPayloadAndPongIsReported() throws {
        let io = MockIO(clientFrame(opcode: Op.pong, payload: Array("42".utf8))
                        + clientFrame(opcode: Op.pong, payload: ConnectionDeadlines.keepalivePayload) + textFrame("x"))
        let ws = Self.socket(io)
        var pongs: [[UInt8]] = []
        ws.onPong = { pongs.append($0) }
        try ws.ping(Array("42".utf8))
        #expect(io.written == [0x89, 0x02, 0x34, 0x32])
        #expect(try ws.receive() == .text("x"))
        #expect(pongs == [Array("42".utf8)], "keepalive pongs are not reported")
    }

    @Test func sendsFromAnotherThreadAreQueuedForTheOwner() throws {
        let io = MockIO(textFrame("go"))
        let ws = Self.socket(io)
        try onAnotherThread {
            #expect(throws: WebSocketError.wrongThread) { try ws.receive() }
            #expect(throws: WebSocketError.wrongThread) { try ws.ping() }
            try ws.send(text: "queued")
            try ws.send(binary: [7])
        }
        #expect(io.written.isEmpty, "only the owner writes")
        #expect(io.wakeCalls == 1, "one wake-up for what is queued")
        #expect(try ws.receive() == .text("go"))
        #expect(io.written == [0x81, 0x06] + Array("queued".utf8) + [0x82, 0x01, 0x07])
    }

    @Test func aPeerTooFarBehindIsClosedWith1008() throws {
        let io = MockIO(closeFrame(code: 1008))
        let ws = Self.socket(io, limits: Limits(maxQueuedBytes: 10))
        try onAnotherThread {
            try ws.send(text: "123456")
            #expect(throws: WebSocketError.peerTooSlow) { try ws.send(text: "789012") }
            // Closed to senders at once, before the owner sends the 1008.
            #expect(!ws.isOpen)
            #expect(throws: WebSocketError.closed) { try ws.send(text: "x") }
        }
        #expect(try ws.receive() == nil)
        #expect(io.written == [0x81, 0x06] + Array("123456".utf8) + [0x88, 0x0A, 0x03, 0xF0] + Array("too slow".utf8))
        #expect(!ws.isOpen)
    }

    @Test func anOverflowAfterThePeersCloseDoesNotReplaceTheReply() throws {
        let io = MockIO(textFrame("go") + closeFrame(code: 4000))
        let ws = Self.socket(io, limits: Limits(maxQueuedBytes: 10))
        #expect(try ws.receive() == .text("go"))
        try onAnotherThread {
            try ws.send(text: "123456")
            #expect(throws: WebSocketError.peerTooSlow) { try ws.send(text: "789012") }
        }
        #expect(try ws.receive() == nil)
        #expect(throws: WebSocketError.closed) { try ws.send(text: "late") }
        try ws.close(code: CloseCode(4000))
        #expect(io.written == serverClose(4000), "the handler's reply, not 1008")
    }

    @Test func closeFromAnotherThreadIsQueued() throws {
        let io = MockIO(closeFrame(code: 4000))
        let ws = Self.socket(io)
        try onAnotherThread { try ws.close(code: CloseCode(4000), reason: "") }
        #expect(try ws.receive() == nil)
        #expect(io.written == serverClose(4000))
        #expect(ws.peerCloseCode == CloseCode(4000))
    }

    @Test func quietPeerIsPingedThenClosedWith1011() throws {
        let io = MockIO([])
        io.quietAtEnd = true
        let ws = Self.socket(io, keepalive: Keepalive(pingInterval: .milliseconds(20), pingTimeout: .milliseconds(20)))
        #expect(try ws.receive() == nil)
        let ping = [0x89, UInt8(ConnectionDeadlines.keepalivePayload.count)] + ConnectionDeadlines.keepalivePayload
        let reason = Array("keepalive ping timeout".utf8)
        #expect(io.written == ping + [0x88, UInt8(2 + reason.count), 0x03, 0xF3] + reason)
    }

    @Test func idleTimeoutClosesWith1001AndGivesUpOnTheReply() throws {
        let io = MockIO([])
        io.quietAtEnd = true
        let ws = Self.socket(io, keepalive: Keepalive(pingInterval: nil, idleTimeout: .milliseconds(20),
                                                      closeTimeout: .milliseconds(20)))
        let started = ContinuousClock.now
        #expect(try ws.receive() == nil)
        #expect(ContinuousClock.now - started < .seconds(2))
        #expect(io.written == [0x88, 0x0E, 0x03, 0xE9] + Array("idle timeout".utf8))
        #expect(io.logs.contains { $0.message.contains("no close frame from the client") })
    }

    @Test func cookiesAreParsed() {
        let request = UpgradeRequest(resource: "/", headers: [
            ("Cookie", "a=1; b = two ;quoted=\"x y\"; novalue; =empty"), ("cookie", "c=3"),
        ])
        #expect(request.cookies.map(\.name) == ["a", "b", "quoted", "c"])
        #expect(request.cookie("b") == "two")
        #expect(request.cookie("quoted") == "x y")
        #expect(request.cookie("c") == "3")
        #expect(request.cookie("novalue") == nil)
    }

    @Test func loggerWritesAtApacheLevels() {
        let io = MockIO([])
        let logger = Logger.errorLog(io)
        logger.trace("hidden at debug")
        logger.debug("shown", metadata: ["k": "v"])
        logger.error("bad")
        #expect(io.logs.map(\.level) == [.debug, .error])
        #expect(io.logs.first?.message == "shown k=v")
    }
}
