import Glibc
import Testing
@testable import SwiftWebSocket

/// An in-memory `ConnectionIO`: serves scripted input in chunks and records
/// every write.
final class MockIO: ConnectionIO, @unchecked Sendable {
    private let input: [UInt8]
    private let chunkSize: Int
    private(set) var position = 0
    private(set) var readCalls = 0
    /// Every write call's bytes (first and second concatenated), in order,
    /// with the number of reads made before it.
    private(set) var writes: [(readsBefore: Int, bytes: [UInt8])] = []
    private(set) var logs: [(level: LogLevel, message: String)] = []
    /// Thrown by a read once the input is used up, instead of returning 0.
    var errorAtEnd: WebSocketError?
    /// Once the input is used up, reads find nothing (the peer is quiet but
    /// connected) and waits sleep until their timeout, instead of the
    /// stream ending.
    var quietAtEnd = false
    var failWrites = false

    init(_ input: [UInt8], chunkSize: Int = .max) {
        self.input = input
        self.chunkSize = chunkSize
    }

    var written: [UInt8] { writes.flatMap(\.bytes) }
    var atEnd: Bool { position == input.count }

    let logLevel = LogLevel.debug
    var isStopping = false
    /// The thread that made it owns it, as in httpd.
    private let owner = pthread_self()
    private(set) var wakeCalls = 0

    func checkAccess() throws(WebSocketError) {
        guard pthread_equal(owner, pthread_self()) != 0 else { throw .wrongThread }
    }

    func wait(timeout: Duration?) throws(WebSocketError) {
        guard quietAtEnd, position == input.count else { return }
        let (seconds, attoseconds) = (timeout ?? .seconds(1)).components
        usleep(useconds_t(seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
    }

    func wake() { wakeCalls += 1 }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(WebSocketError) -> Int? {
        readCalls += 1
        guard position < input.count else {
            if let errorAtEnd { throw errorAtEnd }
            return quietAtEnd ? nil : 0
        }
        let count = min(chunkSize, buffer.count, input.count - position)
        input.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[position..<position + count]))
        }
        position += count
        return count
    }

    func write(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(WebSocketError) {
        if failWrites { throw .transportFailed("write refused") }
        writes.append((readCalls, Array(first) + Array(second)))
    }

    func log(_ level: LogLevel, _ message: String) {
        logs.append((level, message))
    }
}

@Suite struct WebSocketTests {
    static func socket(_ io: MockIO, limits: Limits = Limits()) -> WebSocket {
        WebSocket(request: UpgradeRequest(resource: "/echo"), subprotocol: "chat", limits: limits, io: io)
    }

    @Test(arguments: [1, 3, 7, 1000, Int.max])
    func receiveReturnsMessagesInOrder(chunkSize: Int) throws {
        let io = MockIO(textFrame("Hello") + clientFrame(opcode: Op.binary, payload: [1, 2, 3])
                        + clientFrame(fin: false, opcode: Op.text, payload: Array("fr".utf8))
                        + clientFrame(opcode: Op.continuation, payload: Array("ag".utf8))
                        + closeFrame(code: 1000), chunkSize: chunkSize)
        let ws = Self.socket(io)
        #expect(ws.isOpen)
        #expect(ws.subprotocol == "chat")
        #expect(ws.request.resource == "/echo")
        #expect(try ws.receive() == .text("Hello"))
        #expect(try ws.receive() == .binary([1, 2, 3]))
        #expect(try ws.receive() == .text("frag"))
        #expect(try ws.receive() == nil)
        #expect(io.written.isEmpty, "the reply waits for the handler to return")
        #expect(ws.owesCloseReplyAfterHandler())
        ws.finish(code: ws.peerCloseCode)
        #expect(io.written == serverClose(1000))
    }

    @Test func closeThatArrivedWhileTheHandlerWasBusyIsAnsweredWithItsCode() throws {
        // The handler took one message and returned; the client's message
        // and close after it were never received.
        let io = MockIO(textFrame("one") + textFrame("unread") + closeFrame(code: 4000))
        let ws = Self.socket(io)
        #expect(try ws.receive() == .text("one"))
        #expect(ws.owesCloseReplyAfterHandler())
        #expect(ws.peerCloseCode == CloseCode(4000))
        ws.finish(code: ws.peerCloseCode)
        #expect(io.written == serverClose(4000), "the reply, not a close of our own")
    }

    @Test func messageLargerThanReadBuffer() throws {
        let payload = (0..<100_000).map { UInt8(truncatingIfNeeded: $0) }
        let io = MockIO(clientFrame(opcode: Op.binary, payload: payload))
        let ws = Self.socket(io)
        #expect(try ws.receive() == .binary(payload))
        #expect(io.readCalls >= 100_000 / WebSocket.readBufferSize)
    }

    @Test func pingsAreAnsweredInsideReceive() throws {
        let io = MockIO(clientFrame(opcode: Op.ping, payload: Array("Hello".utf8)) + textFrame("after"), chunkSize: 4)
        let ws = Self.socket(io)
        #expect(try ws.receive() == .text("after"))
        #expect(io.written == [0x8A, 0x05] + Array("Hello".utf8))
    }

    @Test func pongsAreSwallowed() throws {
        let io = MockIO(clientFrame(opcode: Op.pong, payload: [1]) + textFrame("x"))
        let ws = Self.socket(io)
        #expect(try ws.receive() == .text("x"))
        #expect(io.written.isEmpty)
    }

    @Test func peerCloseEndsReceiveAndCloseChoosesTheReply() throws {
        let io = MockIO(textFrame("last") + closeFrame(code: 1000, reason: Array("bye".utf8)))
        let ws = Self.socket(io)
        #expect(try ws.receive() == .text("last"))
        #expect(try ws.receive() == nil)
        #expect(ws.peerCloseCode == .normalClosure)
        #expect(ws.peerCloseReason == "bye")
        #expect(!ws.isOpen)
        try ws.close(code: CloseCode(4000), reason: "mine")
        #expect(io.written == serverClose(4000).replacingLength(6) + Array("mine".utf8))
        #expect(!ws.owesCloseReplyAfterHandler())
        let reads = io.readCalls
        #expect(try ws.receive() == nil, "stays closed")
        #expect(io.readCalls == reads, "no further reads")
        ws.finish(code: .normalClosure)
        #expect(io.written.count == 8, "no second close")
    }

    @Test func peerEmptyCloseIsAnsweredEmpty() throws {
        let io = MockIO(closeFrame(code: nil))
        let ws = Self.socket(io)
        #expect(try ws.receive() == nil)
        #expect(ws.peerCloseCode == nil)
        ws.finish(code: ws.peerCloseCode)
        #expect(io.written == [0x88, 0x00])
    }

    @Test func sendTextWritesUnmaskedFrame() throws {
        let io = MockIO([])
        let ws = Self.socket(io)
        try ws.send(text: "Hello")
        #expect(io.written == [0x81, 0x05] + Array("Hello".utf8))
        try ws.send(text: "")
        #expect(io.writes.last?.bytes == [0x81, 0x00])
        try ws.send(text: "€")
        #expect(io.writes.last?.bytes == [0x81, 0x03, 0xE2, 0x82, 0xAC])
        #expect(io.writes.count == 3, "one write (and flush) per message")
    }

    @Test func sendBinaryAndMessage() throws {
        let io = MockIO([])
        let ws = Self.socket(io)
        let payload = [UInt8](repeating: 0xAB, count: 300)
        try ws.send(binary: payload)
        #expect(io.writes.last?.bytes == [0x82, 0x7E, 0x01, 0x2C] + payload)
        try ws.send(.text("hi"))
        #expect(io.writes.last?.bytes == [0x81, 0x02, 0x68, 0x69])
        try ws.send(.binary([]))
        #expect(io.writes.last?.bytes == [0x82, 0x00])
    }

    @Test func echoLoop() throws {
        let io = MockIO(textFrame("one") + clientFrame(opcode: Op.binary, payload: [2]) + closeFrame(code: 1001), chunkSize: 2)
        let ws = Self.socket(io)
        while let message = try ws.receive() { try ws.send(message) }
        ws.finish(code: ws.peerCloseCode)
        #expect(io.written == [0x81, 0x03] + Array("one".utf8) + [0x82, 0x01, 0x02] + serverClose(1001))
        #expect(ws.peerCloseCode == .goingAway)
    }

    @Test func sendAfterPeerCloseThrows() throws {
        let io = MockIO(closeFrame(code: 1000))
        let ws = Self.socket(io)
        #expect(try ws.receive() == nil)
        #expect(throws: WebSocketError.closed) { try ws.send(text: "too late") }
        #expect(io.written.isEmpty)
    }

    @Test func closeWritesFrameAndWaitsForPeerClose() throws {
        // The peer still sends a message and a ping before its close.
        let peer = textFrame("in flight") + clientFrame(opcode: Op.ping, payload: [1]) + closeFrame(code: 1000)
        let io = MockIO(peer, chunkSize: 3)
        let ws = Self.socket(io)
        try ws.close(code: .goingAway, reason: "done")
        #expect(io.writes.count == 1)
        #expect(io.writes[0].readsBefore == 0, "the close goes out before reading")
        #expect(io.writes[0].bytes == [0x88, 0x06, 0x03, 0xE9] + Array("done".utf8))
        #expect(io.atEnd, "read until the peer's close")
        #expect(!ws.isOpen)
        #expect(try ws.receive() == nil, "the in-flight message is discarded")
        #expect(throws: WebSocketError.closed) { try ws.send(text: "x") }
    }

    @Test func closeRecordsPeerCloseCode() throws {
        // `peerCloseCode` is documented as the code of the peer's close frame.
        let io = MockIO(closeFrame(code: 4000, reason: Array("ok".utf8)))
        let ws = Self.socket(io)
        try ws.close()
        #expect(ws.peerCloseCode == CloseCode(4000))
        #expect(ws.peerCloseReason == "ok")
    }

    @Test func closeStopsAtEndOfStream() throws {
        let io = MockIO(textFrame("no close from peer"))
        let ws = Self.socket(io)
        try ws.close()
        #expect(io.written == serverClose(1000))
        #expect(io.atEnd)
        #expect(!ws.isOpen)
        #expect(try ws.receive() == nil)
    }

    @Test func closeTwiceWritesOnce() throws {
        let io = MockIO(closeFrame(code: 1000))
        let ws = Self.socket(io)
        try ws.close()
        try ws.close()
        ws.finish(code: .internalError)
        #expect(io.written == serverClose(1000))
    }

    @Test func finishSendsCodeWhenStillOpen() {
        // The peer answers with another code: what went out is finish's.
        let io = MockIO(closeFrame(code: 1000))
        let ws = Self.socket(io)
        ws.finish(code: .internalError)
        #expect(io.written == serverClose(1011))
        #expect(!ws.isOpen)
    }

    @Test func endOfStreamMakesReceiveReturnNil() throws {
        let io = MockIO([])
        let ws = Self.socket(io)
        #expect(try ws.receive() == nil)
        #expect(!ws.isOpen)
        #expect(io.written.isEmpty, "nothing to send to a closed stream")
        #expect(try ws.receive() == nil)
        #expect(throws: WebSocketError.closed) { try ws.send(text: "x") }
        try ws.close()
        #expect(io.written.isEmpty)
    }

    @Test func endOfStreamInsideFrame() throws {
        let frame = textFrame("truncated")
        let io = MockIO(Array(frame.prefix(8)), chunkSize: 3)
        let ws = Self.socket(io)
        #expect(try ws.receive() == nil)
        #expect(ws.peerCloseCode == nil)
        #expect(io.written.isEmpty)
    }

    @Test func protocolViolationClosesWithCodeAndLogs() throws {
        let io = MockIO(textFrame("ok") + clientFrame(opcode: Op.text, payload: [0xFF]))
        let ws = Self.socket(io)
        #expect(try ws.receive() == .text("ok"))
        #expect(try ws.receive() == nil)
        #expect(io.written == serverClose(1007))
        #expect(io.logs.count == 1)
        #expect(io.logs.first?.level == .info)
        #expect(!ws.isOpen)
    }

    @Test func messageTooBigClosesWith1009() throws {
        let io = MockIO(clientFrame(opcode: Op.binary, announcedLength: 1_000_000))
        let ws = Self.socket(io, limits: Limits(maxMessageSize: 1000))
        #expect(try ws.receive() == nil)
        #expect(io.written == serverClose(1009))
    }

    @Test func readErrorIsThrownThenConnectionIsClosed() throws {
        let io = MockIO(textFrame("first"))
        io.errorAtEnd = .transportFailed("reset")
        let ws = Self.socket(io)
        #expect(try ws.receive() == .text("first"))
        #expect(throws: WebSocketError.transportFailed("reset")) { try ws.receive() }
        #expect(!ws.isOpen)
        #expect(try ws.receive() == nil)
        #expect(throws: WebSocketError.closed) { try ws.send(text: "x") }
    }

    @Test func writeErrorIsThrownAndClosesTransport() throws {
        let io = MockIO(clientFrame(opcode: Op.ping, payload: [1]) + textFrame("x"))
        io.failWrites = true
        let ws = Self.socket(io)
        #expect(throws: WebSocketError.transportFailed("write refused")) { try ws.receive() }
        #expect(!ws.isOpen)
        #expect(throws: WebSocketError.closed) { try ws.send(text: "y") }
    }
}
