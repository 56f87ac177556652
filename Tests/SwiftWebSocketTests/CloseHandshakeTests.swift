import Testing
@testable import SwiftWebSocket

/// The closing handshake (RFC 6455 5.5.1, 7.1-7.4) in `ServerProtocol`.
@Suite struct CloseHandshakeTests {
    @Test func closeWithCodeAndReasonIsEchoed() {
        let result = run(closeFrame(code: 1000, reason: Array("bye".utf8)))
        #expect(result.events == [.close(code: .normalClosure, reason: "bye")])
        #expect(result.output == [0x88, 0x02, 0x03, 0xE8])
        #expect(result.state == .closed)
    }

    @Test func failureAfterAMessageTakesEffectWhenItsEventIsTaken() throws {
        // A valid message and a bad frame in one read: the message can still
        // be answered before the close goes out (Autobahn 3.2, 5.15).
        var engine = ServerProtocol()
        engine.receive(clientFrame(opcode: Op.text, payload: Array("hi".utf8))
                       + clientFrame(rsv: 0x4, opcode: Op.text, payload: [0x61]))
        #expect(engine.nextEvent() == .message(.text("hi")))
        #expect(engine.state == .open)
        #expect(engine.pendingOutput.isEmpty)
        let framed = engine.messageHeader(opcode: .text, payload: Array("hi".utf8))
        let header = try #require(framed)
        #expect(header.count == 2)
        #expect(engine.nextEvent() == .failed(.reservedBitsSet))
        #expect(engine.state == .closed)
        #expect(engine.pendingOutput == serverClose(1002))
    }

    @Test func emptyCloseIsAnsweredWithEmptyClose() {
        let frame = closeFrame(code: nil)
        #expect(frame == [0x88, 0x80, 0x37, 0xFA, 0x21, 0x3D])
        let result = run(frame)
        #expect(result.events == [.close(code: nil, reason: "")])
        #expect(result.output == [0x88, 0x00])
        #expect(result.state == .closed)
    }

    @Test func closeWithOneBytePayloadFails() {
        let result = run(clientFrame(opcode: Op.close, payload: [0x03]))
        #expect(result.events == [.failed(.closePayloadOfOneByte)])
        #expect(result.output == serverClose(1002))
        #expect(result.state == .closed)
    }

    @Test(arguments: [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] as [UInt16])
    func invalidCloseCodesFail(code: UInt16) {
        let result = run(closeFrame(code: code))
        #expect(result.events == [.failed(.invalidCloseCode(code))])
        #expect(result.output == serverClose(1002))
        #expect(result.state == .closed)
        #expect(!CloseCode(code).isValidOnWire)
    }

    @Test(arguments: [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] as [UInt16])
    func validCloseCodesAreAcceptedAndEchoed(code: UInt16) {
        let result = run(closeFrame(code: code))
        #expect(result.events == [.close(code: CloseCode(code), reason: "")])
        #expect(result.output == serverClose(code))
        #expect(result.state == .closed)
        #expect(CloseCode(code).isValidOnWire)
    }

    @Test func closeReasonWithMultiByteText() {
        let reason = "tschüß 👋"
        let result = run(closeFrame(code: 1001, reason: Array(reason.utf8)))
        #expect(result.events == [.close(code: .goingAway, reason: reason)])
        #expect(result.output == serverClose(1001), "the reason is not echoed")
    }

    @Test func closeReasonOf123BytesIsAccepted() {
        let reason = String(repeating: "r", count: 123)
        let result = run(closeFrame(code: 1000, reason: Array(reason.utf8)))
        #expect(result.events == [.close(code: .normalClosure, reason: reason)])
    }

    @Test(arguments: [[0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0x61, 0xE2, 0x82]] as [[UInt8]])
    func closeReasonWithInvalidUTF8Fails(reason: [UInt8]) {
        let result = run(closeFrame(code: 1000, reason: reason))
        #expect(result.events == [.failed(.invalidUTF8)])
        #expect(result.output == serverClose(1007))
        #expect(result.state == .closed)
    }

    @Test func closeFedOneByteAtATime() {
        var h = Harness()
        #expect(h.feed(closeFrame(code: 4000, reason: Array("é".utf8)), chunkSize: 1) == [.close(code: CloseCode(4000), reason: "é")])
        #expect(h.takeOutput() == serverClose(4000))
    }

    @Test func closeBetweenFragmentsEndsTheConnection() {
        // A control frame may arrive between fragments; a close ends it all.
        let bytes = clientFrame(fin: false, opcode: Op.text, payload: Array("half".utf8)) + closeFrame(code: 1000)
        let result = run(bytes)
        #expect(result.events == [.close(code: .normalClosure, reason: "")])
        #expect(result.output == serverClose(1000))
    }

    @Test func inputAfterCloseIsIgnored() {
        var h = Harness()
        let events = h.feed(closeFrame(code: 1000) + textFrame("late") + clientFrame(opcode: Op.ping, payload: [1]))
        #expect(events == [.close(code: .normalClosure, reason: "")])
        #expect(h.takeOutput() == serverClose(1000))
        #expect(h.feed(textFrame("later") + closeFrame(code: 1000) + [0xFF, 0xFF]).isEmpty)
        #expect(h.takeOutput().isEmpty, "no pong, no second close")
        #expect(h.state == .closed)
    }

    // MARK: Server-initiated close

    @Test func serverCloseQueuesFrameAndWaitsForPeer() {
        var h = Harness()
        let accepted = h.engine.close(code: .goingAway, reason: "bye")
        #expect(accepted)
        #expect(h.takeOutput() == [0x88, 0x05, 0x03, 0xE9] + Array("bye".utf8))
        #expect(h.state == .closeSent)
        let again = h.engine.close()
        #expect(again == false, "a second close does nothing")
        #expect(h.takeOutput().isEmpty)

        // Data after our close is read but not delivered; pings are not answered.
        #expect(h.feed(textFrame("dropped")).isEmpty)
        #expect(h.feed(clientFrame(fin: false, opcode: Op.binary, payload: [1]) + clientFrame(opcode: Op.continuation, payload: [2])).isEmpty)
        #expect(h.feed(clientFrame(opcode: Op.ping, payload: [5])) == [.ping([5])])
        #expect(h.takeOutput().isEmpty)
        #expect(h.state == .closeSent)

        #expect(h.feed(closeFrame(code: 1001)) == [.close(code: .goingAway, reason: "")])
        #expect(h.takeOutput().isEmpty, "the close is not echoed twice")
        #expect(h.state == .closed)
    }

    @Test func serverCloseDefaultIsNormalClosure() {
        var h = Harness()
        h.engine.close()
        #expect(h.takeOutput() == [0x88, 0x02, 0x03, 0xE8])
    }

    @Test func peerEmptyCloseCompletesServerClose() {
        var h = Harness()
        h.engine.close(code: CloseCode(4001))
        #expect(h.takeOutput() == serverClose(4001))
        #expect(h.feed(closeFrame(code: nil)) == [.close(code: nil, reason: "")])
        #expect(h.takeOutput().isEmpty)
        #expect(h.state == .closed)
    }

    @Test func violationAfterServerCloseSendsNoSecondClose() {
        var h = Harness()
        h.engine.close()
        _ = h.takeOutput()
        #expect(h.feed(clientFrame(opcode: 5)) == [.failed(.reservedOpcode(5))])
        #expect(h.takeOutput().isEmpty)
        #expect(h.state == .closed)
    }

    @Test func closeAfterClosedReturnsFalse() {
        var h = Harness()
        h.feed(closeFrame(code: 1000))
        _ = h.takeOutput()
        let closedAgain = h.engine.close()
        #expect(closedAgain == false)
        #expect(h.takeOutput().isEmpty)
    }

    @Test func connectionLostClosesWithoutOutput() {
        var h = Harness()
        h.engine.connectionLost()
        #expect(h.state == .closed)
        #expect(h.feed(textFrame("x")).isEmpty)
        #expect(h.takeOutput().isEmpty)
        let closedAgain = h.engine.close()
        #expect(closedAgain == false)
    }

    @Test func longReasonIsTruncatedTo123Bytes() {
        var h = Harness()
        h.engine.close(code: .normalClosure, reason: String(repeating: "a", count: 200))
        let output = h.takeOutput()
        #expect(output.count == 2 + 125)
        #expect(Array(output.prefix(4)) == [0x88, 125, 0x03, 0xE8])
        #expect(Array(output.dropFirst(4)) == [UInt8](repeating: 0x61, count: 123))
    }

    static let truncationCases: [(String, Int)] = [
        // 122 ASCII + a 2-byte character: 124 bytes, the character is dropped.
        (String(repeating: "a", count: 122) + "é", 122),
        // 121 ASCII + € (3 bytes) = 124: dropped.
        (String(repeating: "a", count: 121) + "€", 121),
        // 120 ASCII + € = 123: fits exactly.
        (String(repeating: "a", count: 120) + "€", 123),
        // 4-byte characters: 30 fit (120 bytes), the 31st would need 124.
        (String(repeating: "𝄞", count: 40), 120),
    ]

    @Test(arguments: truncationCases)
    func longReasonIsCutAtCharacterBoundary(reason: String, expectedCount: Int) {
        var h = Harness()
        h.engine.close(code: .normalClosure, reason: reason)
        let output = h.takeOutput()
        let sent = Array(output.dropFirst(4))
        #expect(output[1] == UInt8(2 + expectedCount))
        #expect(sent.count == expectedCount)
        #expect(sent == Array(reason.utf8.prefix(expectedCount)))
        #expect(UTF8Validator.isValid(sent))
    }

    @Test func truncatedHelper() {
        #expect(ServerProtocol.truncated("", toUTF8Count: 123) == [])
        #expect(ServerProtocol.truncated("abc", toUTF8Count: 2) == Array("ab".utf8))
        #expect(ServerProtocol.truncated("a€", toUTF8Count: 3) == [0x61])
        #expect(ServerProtocol.truncated("a€", toUTF8Count: 4) == Array("a€".utf8))
    }

    @Test func failedConnectionRefusesServerClose() {
        var h = Harness()
        h.feed([0x81, 0x00]) // unmasked
        #expect(h.takeOutput() == serverClose(1002))
        let closedAgain = h.engine.close()
        #expect(closedAgain == false)
        #expect(h.takeOutput().isEmpty)
    }

    @Test func pingQueuesAndIsRefusedAfterClose() {
        var h = Harness()
        let pinged = h.engine.ping(Array("hi".utf8))
        #expect(pinged)
        #expect(h.takeOutput() == [0x89, 0x02, 0x68, 0x69])
        let pingedLong = h.engine.ping([UInt8](repeating: 1, count: 200))
        #expect(pingedLong)
        let long = h.takeOutput()
        #expect(Array(long.prefix(2)) == [0x89, 125])
        #expect(long.count == 127)
        h.engine.close()
        _ = h.takeOutput()
        let pingedAfterClose = h.engine.ping()
        #expect(pingedAfterClose == false)
        #expect(h.takeOutput().isEmpty)
    }
}
