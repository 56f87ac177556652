import Synchronization
import Testing
@testable import SwiftWebSocket

/// The connection core alone: bytes in, instants in, sends and closes in;
/// frames out through a recording write, and what it asks as values. No
/// driver, no thread but the test's, a clock that is only numbers.
struct ConnectionCoreTests {
    /// What the core wrote and logged.
    final class Wire {
        var bytes: [UInt8] = []
        var lines: [String] = []
        var failWrites = false

        func take() -> [UInt8] {
            defer { bytes = [] }
            return bytes
        }
    }

    struct WriteFailed: Error {}

    static func at(seconds: Double) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: Int64(seconds * 1e9))
    }

    static let keepalive = Keepalive(pingInterval: .seconds(20), pingTimeout: .seconds(5),
                                     idleTimeout: nil, closeTimeout: .seconds(10))

    static func core(_ wire: Wire, outbox: Outbox = Outbox(limit: 1 << 20),
                     keepalive: Keepalive = keepalive) -> ConnectionCore {
        ConnectionCore(limits: Limits(), keepalive: keepalive, compression: nil, outbox: outbox,
                       memory: nil, meter: nil, now: at(seconds: 0)) { _, line in wire.lines.append(line) }
    }

    static func write(_ wire: Wire) -> ConnectionCore.Write {
        { first, second in
            if wire.failWrites { throw WriteFailed() }
            wire.bytes += Array(first) + Array(second)
        }
    }

    /// Hands `bytes` to the core as one read at `now`.
    static func arrive(_ bytes: [UInt8], _ core: inout ConnectionCore, at now: MonotonicInstant) throws {
        let count = try core.read(at: now) { () throws(WebSocketError) in bytes.count }
        #expect(count == bytes.count)
        bytes.withUnsafeBytes { core.receive($0) }
    }

    static func serverText(_ text: String) -> [UInt8] {
        [0x81, UInt8(text.utf8.count)] + Array(text.utf8)
    }

    static let keepalivePing = [0x89, UInt8(ConnectionDeadlines.keepalivePayload.count)]
        + ConnectionDeadlines.keepalivePayload

    @Test func aQuietPeerIsPingedAtItsDeadlineAndDroppedWith1011WhenItStaysQuiet() throws {
        let wire = Wire()
        var core = Self.core(wire)
        #expect(try core.actOnDeadlines(at: Self.at(seconds: 19), isStopping: false, Self.write(wire))
            == .wait(until: Self.at(seconds: 20)))
        #expect(wire.bytes.isEmpty)
        #expect(try core.actOnDeadlines(at: Self.at(seconds: 20), isStopping: false, Self.write(wire))
            == .wait(until: Self.at(seconds: 25)))
        #expect(wire.take() == Self.keepalivePing)
        #expect(try core.actOnDeadlines(at: Self.at(seconds: 25), isStopping: false, Self.write(wire)) == .drop)
        let reason = Array("keepalive ping timeout".utf8)
        #expect(wire.take() == [0x88, UInt8(2 + reason.count), 0x03, 0xF3] + reason)
        #expect(wire.lines.last?.contains("closing with 1011") == true)
    }

    @Test func anyInputAnswersTheKeepalivePing() throws {
        let wire = Wire()
        var core = Self.core(wire)
        _ = try core.actOnDeadlines(at: Self.at(seconds: 20), isStopping: false, Self.write(wire))
        // The pong, at 22 s: the next ping is due 20 s after it.
        try Self.arrive(clientFrame(opcode: Op.pong, payload: ConnectionDeadlines.keepalivePayload),
                        &core, at: Self.at(seconds: 22))
        #expect(try core.nextEvent(Self.write(wire)) == nil, "the keepalive's pong is not the handler's")
        #expect(try core.actOnDeadlines(at: Self.at(seconds: 25), isStopping: false, Self.write(wire))
            == .wait(until: Self.at(seconds: 42)))
    }

    @Test func ourCloseWaitsForThePeersUntilTheCloseTimeout() throws {
        let wire = Wire()
        var core = Self.core(wire)
        try core.close(code: .normalClosure, reason: "", at: Self.at(seconds: 3), Self.write(wire))
        #expect(wire.take() == serverClose(1000))
        #expect(core.state == .closeSent && core.isReading)
        #expect(try core.actOnDeadlines(at: Self.at(seconds: 12.9), isStopping: false, Self.write(wire))
            == .wait(until: Self.at(seconds: 13)))
        #expect(try core.actOnDeadlines(at: Self.at(seconds: 13), isStopping: false, Self.write(wire)) == .drop)
        #expect(wire.bytes.isEmpty, "our close went out already")
    }

    @Test func aStoppingServerClosesWith1001Once() throws {
        let wire = Wire()
        var core = Self.core(wire)
        _ = try core.actOnDeadlines(at: Self.at(seconds: 1), isStopping: true, Self.write(wire))
        let reason = Array("server stopping".utf8)
        #expect(wire.take() == [0x88, UInt8(2 + reason.count), 0x03, 0xE9] + reason)
        _ = try core.actOnDeadlines(at: Self.at(seconds: 2), isStopping: true, Self.write(wire))
        #expect(wire.bytes.isEmpty)
    }

    @Test func thePeersCloseIsRecordedAndTheReplyCarriesTheCodeGiven() throws {
        let wire = Wire()
        var core = Self.core(wire)
        try Self.arrive(closeFrame(code: 4001, reason: Array("done".utf8)), &core, at: Self.at(seconds: 1))
        #expect(try core.nextEvent(Self.write(wire)) == .peerClosed)
        #expect(core.peerClose == ConnectionCore.PeerClose(code: CloseCode(4001), reason: "done"))
        #expect(core.state == .closeReceived && !core.isReading)
        #expect(wire.bytes.isEmpty, "the reply is the driver's to send")
        try core.close(code: CloseCode(4001), reason: "", at: Self.at(seconds: 2), Self.write(wire))
        #expect(wire.take() == serverClose(4001))
        #expect(core.isFinished)
    }

    @Test func aCodeThatMayNotBeSentIsLoggedAndSentAs1000() throws {
        let wire = Wire()
        var core = Self.core(wire)
        try core.close(code: .abnormalClosure, reason: "", at: Self.at(seconds: 1), Self.write(wire))
        #expect(wire.take() == serverClose(1000))
        #expect(wire.lines == ["close code 1006 may not be sent; closing with 1000"])
    }

    @Test func aViolationIsClosedAndLoggedAndTheOutboxShut() throws {
        let wire = Wire()
        let outbox = Outbox(limit: 1 << 20)
        var core = Self.core(wire, outbox: outbox)
        try Self.arrive(clientFrame(rsv: 0x4, opcode: Op.text, payload: Array("bad".utf8)), &core, at: Self.at(seconds: 1))
        #expect(try core.nextEvent(Self.write(wire)) == nil)
        #expect(wire.take() == serverClose(1002))
        #expect(wire.lines.count == 1 && wire.lines[0].hasPrefix("closing with 1002"))
        #expect(!outbox.isOpen)
        #expect(core.isFinished)
    }

    @Test func queuedItemsAreWrittenInOrderAndAQueuedCloseEndsThem() throws {
        let wire = Wire()
        let outbox = Outbox(limit: 1 << 20)
        var core = Self.core(wire, outbox: outbox)
        for item in [Outbox.Item.message(.text("a")), .message(.text("b")), .close(.goingAway, reason: "bye"),
                     .message(.text("never"))] {
            _ = try? outbox.enqueue(item)
        }
        #expect(try core.deliverQueued(Self.write(wire)) == .delivered)
        #expect(try core.deliverQueued(Self.write(wire)) == .delivered)
        #expect(try core.deliverQueued(Self.write(wire)) == .close(.goingAway, reason: "bye"))
        #expect(wire.take() == Self.serverText("a") + Self.serverText("b"))
        #expect(try core.deliverQueued(Self.write(wire)) == .nothing, "what followed the close is dropped")
        #expect(!outbox.isOpen)
    }

    @Test func whileTheSocketIsFullNothingIsTakenButAnOverflowStillCloses() throws {
        let wire = Wire()
        let outbox = Outbox(limit: 10)
        var core = Self.core(wire, outbox: outbox)
        _ = try outbox.enqueue(.message(.text("12345")))
        #expect(try core.deliverQueued(Self.write(wire), writable: false) == .nothing)
        #expect(wire.bytes.isEmpty)
        #expect(throws: WebSocketError.peerTooSlow) { try outbox.enqueue(.message(.text("678901"))) }
        #expect(try core.deliverQueued(Self.write(wire), writable: false) == .close(.policyViolation, reason: "too slow"))
        #expect(wire.lines == ["more than 10 bytes queued for a slow client; closing with 1008"])
        #expect(wire.bytes.isEmpty, "what waited is dropped: the client does not read")
    }

    @Test func whatWasAcceptedBeforeAnOverflowIsWrittenBeforeTheClose() throws {
        let wire = Wire()
        let outbox = Outbox(limit: 10)
        var core = Self.core(wire, outbox: outbox)
        _ = try outbox.enqueue(.message(.text("12345")))
        #expect(throws: WebSocketError.peerTooSlow) { try outbox.enqueue(.message(.text("678901"))) }
        #expect(try core.deliverQueued(Self.write(wire)) == .delivered)
        #expect(try core.deliverQueued(Self.write(wire)) == .close(.policyViolation, reason: "too slow"))
        #expect(wire.take() == Self.serverText("12345"))
        #expect(wire.lines == ["more than 10 bytes queued for a slow client; closing with 1008"])
    }

    @Test func aFailedWriteEndsTheTransport() throws {
        let wire = Wire()
        let outbox = Outbox(limit: 1 << 20)
        var core = Self.core(wire, outbox: outbox)
        wire.failWrites = true
        #expect(throws: WriteFailed.self) { try core.send(.text("lost"), Self.write(wire)) }
        #expect(core.transportClosed && core.isFinished && !outbox.isOpen)
        #expect(throws: WebSocketError.closed) { try core.send(.text("after"), Self.write(wire)) }
    }

    @Test func theEndOfTheStreamEndsTheTransport() throws {
        let wire = Wire()
        var core = Self.core(wire)
        #expect(try core.read(at: Self.at(seconds: 1)) { () throws(WebSocketError) in 0 } == 0)
        #expect(core.transportClosed && !core.isReading)
        #expect(throws: WebSocketError.closed) { try core.ping([], Self.write(wire)) }
    }

    @Test func noOtherMessageGoesBetweenAFragmentedMessagesPieces() throws {
        let wire = Wire()
        let outbox = Outbox(limit: 1 << 20)
        var core = Self.core(wire, outbox: outbox)
        try [UInt8]("one".utf8).withUnsafeBytes { try core.sendFragment(.text, $0, isFinal: false, Self.write(wire)) }
        _ = try outbox.enqueue(.message(.text("queued")))
        #expect(try core.deliverQueued(Self.write(wire)) == .nothing)
        #expect(throws: WebSocketError.fragmentedMessageInProgress) { try core.send(.text("x"), Self.write(wire)) }
        try [UInt8]("two".utf8).withUnsafeBytes { try core.sendFragment(.text, $0, isFinal: true, Self.write(wire)) }
        #expect(try core.deliverQueued(Self.write(wire)) == .delivered)
        #expect(wire.take() == [0x01, 3] + Array("one".utf8) + [0x80, 3] + Array("two".utf8) + Self.serverText("queued"))
    }

    /// Delivers what is queued until the outbox gives nothing more.
    static func deliverAll(_ core: inout ConnectionCore, _ wire: Wire) throws -> [ConnectionCore.Queued] {
        var results: [ConnectionCore.Queued] = []
        while true {
            let result = try core.deliverQueued(write(wire))
            guard result != .nothing else { return results }
            results.append(result)
        }
    }

    @Test func aQueuedStreamOvertakesWhatWasQueuedAfterItBeganAndThatFollowsInOrder() throws {
        let wire = Wire()
        let outbox = Outbox(limit: 1 << 20)
        var core = Self.core(wire, outbox: outbox)
        _ = try outbox.enqueue(.message(.text("before")))
        _ = try outbox.enqueue(.fragment(.text, Array("one".utf8), isFinal: false))
        _ = try outbox.enqueue(.message(.text("during")))
        #expect(try Self.deliverAll(&core, wire) == [.delivered, .delivered])
        #expect(wire.take() == Self.serverText("before") + [0x01, 3] + Array("one".utf8))
        _ = try outbox.enqueue(.ping(Array("p".utf8)))
        _ = try outbox.enqueue(.fragment(.text, [], isFinal: true))
        _ = try outbox.enqueue(.message(.text("after")))
        #expect(try Self.deliverAll(&core, wire) == [.delivered, .delivered, .delivered, .delivered])
        #expect(wire.take() == [0x89, 1] + Array("p".utf8) + [0x80, 0] + Self.serverText("during")
                + Self.serverText("after"))
    }

    @Test func aCloseQueuedAfterAStreamWaitsForWhatTheStreamOvertook() throws {
        let wire = Wire()
        let outbox = Outbox(limit: 1 << 20)
        var core = Self.core(wire, outbox: outbox)
        _ = try outbox.enqueue(.fragment(.binary, [1], isFinal: false))
        #expect(try Self.deliverAll(&core, wire) == [.delivered])
        _ = try outbox.enqueue(.message(.text("overtaken")))
        _ = try outbox.enqueue(.fragment(.binary, [2], isFinal: true))
        _ = try outbox.enqueue(.close(.normalClosure, reason: ""))
        #expect(try Self.deliverAll(&core, wire) == [.delivered, .delivered, .close(.normalClosure, reason: "")])
        #expect(wire.take() == [0x02, 1, 1, 0x80, 1, 2] + Self.serverText("overtaken"))
    }

    @Test func aCloseEndsAnUnfinishedQueuedStream() throws {
        let wire = Wire()
        let outbox = Outbox(limit: 1 << 20)
        var core = Self.core(wire, outbox: outbox)
        _ = try outbox.enqueue(.fragment(.text, Array("half".utf8), isFinal: false))
        _ = try outbox.enqueue(.message(.text("waits")))
        _ = try outbox.enqueue(.close(.internalError, reason: ""))
        #expect(try Self.deliverAll(&core, wire) == [.delivered, .close(.internalError, reason: "")])
        #expect(wire.take() == [0x01, 4] + Array("half".utf8))
        #expect(!outbox.isOpen)
    }

    @Test func aStreamsWriterWaitsOnItsOwnPiecesNotOnWhatWaitsForItsEnd() async throws {
        let wire = Wire()
        let outbox = Outbox(limit: 100)
        var core = Self.core(wire, outbox: outbox)
        _ = try outbox.enqueue(.fragment(.text, Array("a".utf8), isFinal: false))
        #expect(try core.deliverQueued(Self.write(wire)) == .delivered)
        _ = try outbox.enqueue(.message(.text(String(repeating: "m", count: 60))))
        // 60 of 100 bytes queued wait for the stream's end: a sender waits,
        // the stream's writer does not.
        let resumed = Atomic(false)
        let writer = Task {
            await outbox.waitForRoomToStream()
            resumed.store(true, ordering: .releasing)
        }
        try await Task.sleep(for: .milliseconds(50))
        let waitedForTheMessage = !resumed.load(ordering: .acquiring)
        if waitedForTheMessage { outbox.close() }  // fail, not hang
        await writer.value
        try #require(!waitedForTheMessage, "the writer waited for what waits for its message's end")
        _ = try outbox.enqueue(.fragment(.text, Array("b".utf8), isFinal: true))
        #expect(try Self.deliverAll(&core, wire) == [.delivered, .delivered])
        #expect(wire.take() == [0x01, 1] + Array("a".utf8) + [0x80, 1] + Array("b".utf8)
                + Self.serverText(String(repeating: "m", count: 60)))
    }
}
