import Synchronization
import Testing
@testable import SwiftWebSocket

/// The event MPM as a `ParkedConnection` sees it, in memory: input handed
/// out one read at a time, writes recorded, timers counted (the tests fire
/// them), log lines kept.
final class FakeMPM: ParkedConnectionIO {
    private struct State {
        var reads: [[UInt8]] = []
        var written: [UInt8] = []
        var timers: [Duration] = []
        var lines: [String] = []
        var isShutDown = false
    }

    private let state = Mutex(State())

    /// Input for the connection's next step, as one read.
    func arrive(_ bytes: [UInt8]) { state.withLock { $0.reads.append(bytes) } }
    var written: [UInt8] { state.withLock { $0.written } }
    var timers: [Duration] { state.withLock { $0.timers } }
    var lines: [String] { state.withLock { $0.lines } }
    var isShutDown: Bool { state.withLock { $0.isShutDown } }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(WebSocketError) -> Int? {
        state.withLock { state in
            guard !state.reads.isEmpty else { return nil }
            let bytes = state.reads.removeFirst()
            buffer.copyBytes(from: bytes)
            return bytes.count
        }
    }

    func write(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(WebSocketError) {
        state.withLock { $0.written += Array(first) + Array(second) }
    }

    func flush(waiting: Bool) throws(WebSocketError) -> Bool { false }
    func scheduleTimer(after delay: Duration) { state.withLock { $0.timers.append(delay) } }
    func shutdown() { state.withLock { $0.isShutDown = true } }
    func log(_ level: LogLevel, _ message: String) { state.withLock { $0.lines.append(message) } }
    var isStopping: Bool { false }
    func runningHandlerCode(_ body: () -> Void) { body() }
}

/// The codes `onClose` was told, from whichever thread.
final class CloseLog: Sendable {
    let codes = Mutex<[CloseCode]>([])
}

/// Echoes, and remembers the close it was told of.
struct ParkedEcho: WebSocketEventHandler {
    let closes = CloseLog()

    func onMessage(_ message: Message, from connection: WebSocketConnection) throws {
        try connection.send(message)
    }

    func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String) {
        closes.codes.withLock { $0.append(code) }
    }
}

struct ParkedConnectionTests {
    static func open(_ mpm: FakeMPM, handler: ParkedEcho = ParkedEcho(),
                     keepalive: Keepalive = Keepalive()) -> ParkedConnection {
        ParkedConnection(handler: handler, handlerName: "echo", request: UpgradeRequest(resource: "/echo"),
                         subprotocol: nil, limits: Limits(), keepalive: keepalive, compression: nil, io: mpm)
    }

    /// The unmasked frame the server sends for a short text message.
    static func serverText(_ text: String) -> [UInt8] {
        [0x81, UInt8(text.utf8.count)] + Array(text.utf8)
    }

    @Test func whatACallbackSentGoesOutBeforeTheCloseOfALaterViolation() {
        let mpm = FakeMPM()
        let connection = Self.open(mpm)
        #expect(connection.open() == .input)
        // One read: a message, then a frame with a reserved bit set.
        mpm.arrive(textFrame("before") + clientFrame(rsv: 0x4, opcode: Op.text, payload: Array("bad".utf8)))
        #expect(connection.resume() == .closed)
        #expect(mpm.written == Self.serverText("before") + serverClose(1002))
    }

    @Test func aSendFromAnotherThreadIsWrittenByATimerWhileParked() async throws {
        let mpm = FakeMPM()
        let parked = Self.open(mpm)
        #expect(parked.open() == .input)
        parked.parked()
        let timersBefore = mpm.timers.count
        let connection = parked.connection
        try await Task.detached { try connection.send(text: "from elsewhere") }.value
        #expect(mpm.timers.count == timersBefore + 1, "the send asked for a timer")
        parked.timerFired()
        #expect(mpm.written == Self.serverText("from elsewhere"))
    }

    @Test func aTimerThatFiresWhileTheMPMHoldsTheConnectionIsNotLost() {
        let mpm = FakeMPM()
        let parked = Self.open(mpm)
        #expect(parked.open() == .input)
        // The MPM holds it (a worker runs its hooks): the timer steps back.
        try? parked.connection.send(text: "queued")
        parked.timerFired()
        #expect(mpm.written.isEmpty)
        let timersBefore = mpm.timers.count
        parked.parked()
        #expect(mpm.timers.count == timersBefore + 1, "parking reschedules the missed timer")
        parked.timerFired()
        #expect(mpm.written == Self.serverText("queued"))
    }

    @Test func theClientsCloseIsAnsweredWithItsCodeAndOnCloseTold() {
        let mpm = FakeMPM()
        let handler = ParkedEcho()
        let connection = Self.open(mpm, handler: handler)
        #expect(connection.open() == .input)
        mpm.arrive(closeFrame(code: 1001))
        #expect(connection.resume() == .closed)
        #expect(mpm.written == serverClose(1001))
        #expect(handler.closes.codes.withLock { $0 } == [.goingAway])
    }

    @Test func aPeerThatNeverAnswersTheKeepalivePingIsDroppedWith1011() async throws {
        let mpm = FakeMPM()
        let handler = ParkedEcho()
        let parked = Self.open(mpm, handler: handler,
                               keepalive: Keepalive(pingInterval: .milliseconds(10), pingTimeout: .milliseconds(10)))
        #expect(parked.open() == .input)
        parked.parked()
        try await Task.sleep(for: .milliseconds(20))
        parked.timerFired()
        let ping = [0x89, UInt8(ConnectionDeadlines.keepalivePayload.count)] + ConnectionDeadlines.keepalivePayload
        #expect(mpm.written == ping)
        try await Task.sleep(for: .milliseconds(20))
        parked.timerFired()
        let reason = Array("keepalive ping timeout".utf8)
        #expect(mpm.written == ping + [0x88, UInt8(2 + reason.count), 0x03, 0xF3] + reason)
        #expect(mpm.isShutDown, "the MPM is made to hand the connection back")
        #expect(handler.closes.codes.withLock { $0 } == [.abnormalClosure])
        #expect(mpm.lines.contains { $0.hasPrefix("no answer to a keepalive ping") })
    }
}
