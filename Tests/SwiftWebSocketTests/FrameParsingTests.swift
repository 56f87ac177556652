import Testing
@testable import SwiftWebSocket

/// Client frames into `ServerProtocol`: messages, lengths, fragmentation,
/// control frames and header-level protocol violations (RFC 6455 5.2-5.5).
@Suite struct FrameParsingTests {
    // MARK: RFC 6455 5.7 examples

    @Test func rfcExampleMaskedTextHello() {
        let frame: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        #expect(textFrame("Hello") == frame, "the helper builds the RFC's frame")
        let result = run(frame)
        #expect(result.events == [.message(.text("Hello"))])
        #expect(result.output.isEmpty)
        #expect(result.state == .open)
    }

    @Test func rfcExampleMaskedPingIsAnsweredWithUnmaskedPong() {
        let ping: [UInt8] = [0x89, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        let result = run(ping)
        #expect(result.events == [.ping(Array("Hello".utf8))])
        #expect(result.output == [0x8A, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        #expect(result.state == .open)
    }

    @Test func unmaskedFrameFailsWith1002() {
        // RFC 5.7's unmasked "Hello": legal from a server, never from a client.
        let result = run([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        #expect(result.events == [.failed(.unmaskedFrame)])
        #expect(result.output == serverClose(1002))
        #expect(result.state == .closed)
    }

    // MARK: Data messages

    @Test func textAndBinaryMessages() {
        var h = Harness()
        #expect(h.feed(textFrame("héllo wörld €𝄞")) == [.message(.text("héllo wörld €𝄞"))])
        #expect(h.feed(clientFrame(opcode: Op.binary, payload: [0, 1, 2, 0xFF, 0x80])) == [.message(.binary([0, 1, 2, 0xFF, 0x80]))])
        #expect(h.takeOutput().isEmpty)
        #expect(h.state == .open)
    }

    @Test func binaryMessageMayHoldInvalidUTF8() {
        let result = run(clientFrame(opcode: Op.binary, payload: [0xC0, 0x80, 0xFF]))
        #expect(result.events == [.message(.binary([0xC0, 0x80, 0xFF]))])
    }

    @Test func zeroByteMessages() {
        var h = Harness()
        let text = clientFrame(opcode: Op.text)
        #expect(text == [0x81, 0x80, 0x37, 0xFA, 0x21, 0x3D])
        #expect(h.feed(text) == [.message(.text(""))])
        #expect(h.feed(clientFrame(opcode: Op.binary)) == [.message(.binary([]))])
        #expect(h.state == .open)
    }

    @Test func unmaskingWithAnAllZeroKeyLeavesPayload() {
        let result = run(clientFrame(opcode: Op.text, payload: Array("abc".utf8), maskKey: [0, 0, 0, 0]))
        #expect(result.events == [.message(.text("abc"))])
    }

    static func pattern(_ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
    }

    static let lengthCases: [(Int, [UInt8])] = [
        (125, [0x82, 0xFD]),
        (126, [0x82, 0xFE, 0x00, 0x7E]),
        (65535, [0x82, 0xFE, 0xFF, 0xFF]),
        (65536, [0x82, 0xFF, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]),
    ]

    @Test(arguments: lengthCases)
    func lengthForms(count: Int, expectedPrefix: [UInt8]) {
        let payload = Self.pattern(count)
        let frame = clientFrame(opcode: Op.binary, payload: payload)
        #expect(Array(frame.prefix(expectedPrefix.count)) == expectedPrefix)
        #expect(frame.count == expectedPrefix.count + 4 + count)
        let result = run(frame)
        #expect(result.events == [.message(.binary(payload))])
        #expect(result.output.isEmpty)
    }

    @Test(arguments: [LengthEncoding.short, .extended16, .extended64])
    func nonMinimalLengthEncodingIsParsed(encoding: LengthEncoding) {
        // RFC 5.2 asks senders for the minimal form; the engine still reads
        // the longer ones by their value.
        let frame = clientFrame(opcode: Op.text, payload: Array("Hello".utf8), length: encoding)
        #expect(run(frame).events == [.message(.text("Hello"))])
    }

    @Test func textWith16BitLengthMultiByte() {
        let text = String(repeating: "ж€𝄞a", count: 1000) // 10,000 bytes
        let frame = textFrame(text)
        #expect(frame[1] == 0x80 | 126)
        #expect(run(frame).events == [.message(.text(text))])
    }

    @Test func severalFramesInOneBuffer() {
        let bytes = textFrame("one") + clientFrame(opcode: Op.ping, payload: [7]) + clientFrame(opcode: Op.binary, payload: [2]) + textFrame("three")
        let result = run(bytes)
        #expect(result.events == [.message(.text("one")), .ping([7]), .message(.binary([2])), .message(.text("three"))])
        #expect(result.output == [0x8A, 0x01, 0x07])
    }

    // MARK: Split input

    @Test(arguments: [0, 5, 125, 126, 300, 65535, 65536])
    func messageFedOneBytePerReceiveCall(count: Int) {
        let payload = Self.pattern(count)
        var h = Harness()
        let events = h.feed(clientFrame(opcode: Op.binary, payload: payload), chunkSize: 1)
        #expect(events == [.message(.binary(payload))])
        #expect(h.state == .open)
    }

    @Test func textMessageOneBytePerCallSplitsCharacters() {
        let text = "a€𝄞ж" + String(repeating: "xyz€", count: 50)
        var h = Harness()
        #expect(h.feed(textFrame(text), chunkSize: 1) == [.message(.text(text))])
    }

    /// A stream of every kind of frame; feeding it in random pieces must give
    /// the same events and output as feeding it whole.
    static func mixedStream() -> ([UInt8], [ServerProtocol.Event]) {
        let big = pattern(70_000)
        let text = String(repeating: "fragment €𝄞 ", count: 20)
        let utf8 = Array(text.utf8)
        var bytes: [UInt8] = []
        bytes += textFrame("Hello")
        bytes += clientFrame(opcode: Op.binary, payload: big)
        bytes += clientFrame(fin: false, opcode: Op.text, payload: Array(utf8[0..<99]), maskKey: [1, 2, 3, 4])
        bytes += clientFrame(opcode: Op.ping, payload: [9, 8, 7])
        bytes += clientFrame(fin: false, opcode: Op.continuation, payload: Array(utf8[99..<100]), maskKey: [0xFF, 0, 0xAA, 0x55])
        bytes += clientFrame(opcode: Op.pong, payload: [])
        bytes += clientFrame(opcode: Op.continuation, payload: Array(utf8[100...]), length: .extended64)
        bytes += clientFrame(opcode: Op.binary, payload: [])
        bytes += closeFrame(code: 1000, reason: Array("done".utf8))
        let events: [ServerProtocol.Event] = [
            .message(.text("Hello")), .message(.binary(big)), .ping([9, 8, 7]), .pong([]),
            .message(.text(text)), .message(.binary([])), .close(code: .normalClosure, reason: "done"),
        ]
        return (bytes, events)
    }

    @Test func mixedStreamInOneCall() {
        let (bytes, expected) = Self.mixedStream()
        let result = run(bytes)
        #expect(result.events == expected)
        #expect(result.output == [0x8A, 0x03, 9, 8, 7] + serverClose(1000))
        #expect(result.state == .closed)
    }

    @Test(arguments: [1, 2, 3, 42, 1234] as [UInt64])
    func mixedStreamInRandomChunks(seed: UInt64) {
        let (bytes, expected) = Self.mixedStream()
        var rng = XorShift(seed: seed)
        for maxChunk in [3, 17, 200, 5000] {
            var h = Harness()
            #expect(h.feed(bytes, randomChunksUpTo: maxChunk, using: &rng) == expected, "max chunk \(maxChunk)")
            #expect(h.takeOutput() == [0x8A, 0x03, 9, 8, 7] + serverClose(1000))
            #expect(h.state == .closed)
        }
    }

    // MARK: Fragmentation

    @Test func textInThreeFragments() {
        var h = Harness()
        #expect(h.feed(clientFrame(fin: false, opcode: Op.text, payload: Array("Hel".utf8))).isEmpty)
        #expect(h.feed(clientFrame(fin: false, opcode: Op.continuation, payload: Array("lo, ".utf8))).isEmpty)
        #expect(h.feed(clientFrame(opcode: Op.continuation, payload: Array("world".utf8))) == [.message(.text("Hello, world"))])
        #expect(h.takeOutput().isEmpty)
    }

    @Test func binaryInFragmentsIncludingEmptyOnes() {
        var h = Harness()
        h.feed(clientFrame(fin: false, opcode: Op.binary, payload: []))
        h.feed(clientFrame(fin: false, opcode: Op.continuation, payload: [1, 2]))
        h.feed(clientFrame(fin: false, opcode: Op.continuation, payload: []))
        #expect(h.feed(clientFrame(opcode: Op.continuation, payload: [3])) == [.message(.binary([1, 2, 3]))])
        // The next message starts from scratch.
        #expect(h.feed(clientFrame(opcode: Op.binary, payload: [4])) == [.message(.binary([4]))])
    }

    @Test func pingInterleavedBetweenFragments() {
        var h = Harness()
        #expect(h.feed(clientFrame(fin: false, opcode: Op.text, payload: Array("frag".utf8))).isEmpty)
        #expect(h.feed(clientFrame(opcode: Op.ping, payload: Array("ping!".utf8))) == [.ping(Array("ping!".utf8))])
        #expect(h.takeOutput() == [0x8A, 0x05] + Array("ping!".utf8))
        #expect(h.feed(clientFrame(fin: false, opcode: Op.continuation, payload: Array("men".utf8))).isEmpty)
        #expect(h.feed(clientFrame(opcode: Op.pong, payload: [1])) == [.pong([1])])
        #expect(h.takeOutput().isEmpty, "a pong is not answered")
        #expect(h.feed(clientFrame(opcode: Op.continuation, payload: Array("ted".utf8))) == [.message(.text("fragmented"))])
    }

    @Test func continuationWithoutStartedMessageFails() {
        let result = run(clientFrame(opcode: Op.continuation, payload: Array("x".utf8)))
        #expect(result.events == [.failed(.unexpectedContinuation)])
        #expect(result.output == serverClose(1002))
        #expect(result.state == .closed)
    }

    @Test func continuationAfterCompletedMessageFails() {
        let result = run(textFrame("done") + clientFrame(opcode: Op.continuation, payload: [0x41]))
        #expect(result.events == [.message(.text("done")), .failed(.unexpectedContinuation)])
        #expect(result.output == serverClose(1002))
    }

    @Test(arguments: [Op.text, Op.binary])
    func newDataFrameDuringFragmentedMessageFails(opcode: UInt8) {
        let bytes = clientFrame(fin: false, opcode: Op.text, payload: Array("par".utf8))
            + clientFrame(opcode: opcode, payload: Array("t".utf8))
        let result = run(bytes)
        #expect(result.events == [.failed(.expectedContinuation)])
        #expect(result.output == serverClose(1002))
        #expect(result.state == .closed)
    }

    // MARK: Control frames

    @Test func emptyAndMaximalPings() {
        #expect(run(clientFrame(opcode: Op.ping)).output == [0x8A, 0x00])
        let payload = Self.pattern(125)
        let result = run(clientFrame(opcode: Op.ping, payload: payload))
        #expect(result.events == [.ping(payload)])
        #expect(result.output == [0x8A, 125] + payload)
    }

    @Test func pingFedOneByteAtATime() {
        var h = Harness()
        let ping = [UInt8]("Hello".utf8)
        #expect(h.feed(clientFrame(opcode: Op.ping, payload: ping), chunkSize: 1) == [.ping(ping)])
        #expect(h.takeOutput() == [0x8A, 0x05] + ping)
    }

    @Test func twoPingsQueueTwoPongsInOrder() {
        let result = run(clientFrame(opcode: Op.ping, payload: [1]) + clientFrame(opcode: Op.ping, payload: [2, 2]))
        #expect(result.output == [0x8A, 0x01, 1, 0x8A, 0x02, 2, 2])
    }

    @Test func unsolicitedPongIsReportedNotAnswered() {
        let result = run(clientFrame(opcode: Op.pong, payload: [0xAB]))
        #expect(result.events == [.pong([0xAB])])
        #expect(result.output.isEmpty)
        #expect(result.state == .open)
    }

    // MARK: Header violations

    @Test(arguments: 1...7)
    func reservedBitsFail(rsv: Int) {
        let result = run(clientFrame(rsv: UInt8(rsv), opcode: Op.text, payload: Array("x".utf8)))
        #expect(result.events == [.failed(.reservedBitsSet)])
        #expect(result.output == serverClose(1002))
        #expect(result.state == .closed)
    }

    @Test(arguments: [Op.ping, Op.pong, Op.close])
    func reservedBitsOnControlFrameFail(opcode: UInt8) {
        let result = run(clientFrame(rsv: 4, opcode: opcode))
        #expect(result.events == [.failed(.reservedBitsSet)])
        #expect(result.output == serverClose(1002))
    }

    @Test(arguments: [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] as [UInt8])
    func reservedOpcodesFail(opcode: UInt8) {
        let result = run(clientFrame(opcode: opcode, payload: [1, 2, 3]))
        #expect(result.events == [.failed(.reservedOpcode(opcode))])
        #expect(result.output == serverClose(1002))
        #expect(result.state == .closed)
    }

    @Test(arguments: [Op.ping, Op.pong, Op.close])
    func controlFrameOver125BytesFails(opcode: UInt8) {
        let result = run(clientFrame(opcode: opcode, payload: Self.pattern(126)))
        #expect(result.events == [.failed(.controlFrameTooLong(126))])
        #expect(result.output == serverClose(1002))
        #expect(result.state == .closed)
    }

    @Test func controlFrameWith64BitLengthFormFails() {
        let result = run(clientFrame(opcode: Op.ping, payload: [1], length: .extended64))
        #expect(result.events == [.failed(.controlFrameTooLong(127))])
        #expect(result.output == serverClose(1002))
    }

    @Test(arguments: [Op.ping, Op.pong, Op.close])
    func fragmentedControlFrameFails(opcode: UInt8) {
        let result = run(clientFrame(fin: false, opcode: opcode, payload: Array("x".utf8)))
        #expect(result.events == [.failed(.fragmentedControlFrame)])
        #expect(result.output == serverClose(1002))
        #expect(result.state == .closed)
    }

    @Test func sixtyFourBitLengthWithHighBitFails() {
        let header = clientFrame(opcode: Op.binary, announcedLength: 0x8000_0000_0000_0000)
        #expect(header == [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x37, 0xFA, 0x21, 0x3D])
        let result = run(header)
        #expect(result.events == [.failed(.invalidPayloadLength)])
        #expect(result.output == serverClose(1002))
        #expect(result.state == .closed)
    }

    @Test func violationIsDetectedFromHeaderFedOneByteAtATime() {
        var h = Harness()
        let header = clientFrame(opcode: Op.binary, announcedLength: UInt64.max)
        #expect(header.count == 14)
        #expect(h.feed(Array(header.prefix(13)), chunkSize: 1).isEmpty, "header incomplete")
        #expect(h.feed([header[13]]) == [.failed(.invalidPayloadLength)])
        #expect(h.takeOutput() == serverClose(1002))
    }

    @Test func inputAfterFailureIsIgnored() {
        var h = Harness()
        #expect(h.feed(clientFrame(rsv: 1, opcode: Op.text)) == [.failed(.reservedBitsSet)])
        #expect(h.takeOutput() == serverClose(1002))
        #expect(h.feed(textFrame("ignored") + clientFrame(opcode: Op.ping)).isEmpty)
        #expect(h.takeOutput().isEmpty)
        #expect(h.state == .closed)
    }

    @Test func bytesAfterBadFrameInSameBufferAreIgnored() {
        let result = run(textFrame("ok") + clientFrame(opcode: 3) + textFrame("never"))
        #expect(result.events == [.message(.text("ok")), .failed(.reservedOpcode(3))])
        #expect(result.output == serverClose(1002))
    }

    @Test func violationsMapToCloseCodes() {
        #expect(ProtocolViolation.invalidUTF8.closeCode == .invalidPayloadData)
        #expect(ProtocolViolation.messageTooBig(limit: 1).closeCode == .messageTooBig)
        let protocolErrors: [ProtocolViolation] = [
            .reservedBitsSet, .reservedOpcode(3), .unmaskedFrame, .fragmentedControlFrame,
            .controlFrameTooLong(126), .invalidPayloadLength, .unexpectedContinuation,
            .expectedContinuation, .closePayloadOfOneByte, .invalidCloseCode(999),
        ]
        for violation in protocolErrors {
            #expect(violation.closeCode == .protocolError, "\(violation)")
        }
    }

    // MARK: Message size limit

    @Test func messageAtTheLimitIsAccepted() {
        let result = run(clientFrame(opcode: Op.binary, payload: Self.pattern(10)), limits: Limits(maxMessageSize: 10))
        #expect(result.events == [.message(.binary(Self.pattern(10)))])
    }

    @Test func messageOverTheLimitFailsWith1009() {
        let result = run(textFrame("12345678901"), limits: Limits(maxMessageSize: 10))
        #expect(result.events == [.failed(.messageTooBig(limit: 10))])
        #expect(result.output == serverClose(1009))
        #expect(result.state == .closed)
    }

    @Test func oversizedMessageIsRefusedFromTheHeaderAlone() {
        var h = Harness(limits: Limits(maxMessageSize: 10))
        let header = clientFrame(opcode: Op.binary, announcedLength: 1_000_000)
        #expect(header.count == 14, "only the header, no payload")
        #expect(h.feed(header) == [.failed(.messageTooBig(limit: 10))])
        #expect(h.takeOutput() == serverClose(1009))
        #expect(h.state == .closed)
    }

    @Test func fragmentsSummingOverTheLimitFail() {
        var h = Harness(limits: Limits(maxMessageSize: 10))
        #expect(h.feed(clientFrame(fin: false, opcode: Op.binary, payload: Self.pattern(6))).isEmpty)
        #expect(h.feed(clientFrame(fin: false, opcode: Op.continuation, payload: Self.pattern(4))).isEmpty)
        #expect(h.feed(clientFrame(opcode: Op.continuation, payload: [1])) == [.failed(.messageTooBig(limit: 10))])
        #expect(h.takeOutput() == serverClose(1009))
    }

    // MARK: Frame size and fragment limits

    @Test func frameOverTheFrameLimitFailsWith1009FromItsHeader() {
        var h = Harness(limits: Limits(maxFrameSize: 8))
        #expect(h.feed(clientFrame(opcode: Op.binary, payload: Self.pattern(8))) == [.message(.binary(Self.pattern(8)))])
        #expect(h.feed(clientFrame(fin: false, opcode: Op.binary, announcedLength: 9)) == [.failed(.frameTooBig(limit: 8))])
        #expect(h.takeOutput() == serverClose(1009))
    }

    @Test func messageOfSmallFramesMayPassTheFrameLimit() {
        var h = Harness(limits: Limits(maxFrameSize: 4))
        #expect(h.feed(clientFrame(fin: false, opcode: Op.binary, payload: Self.pattern(4))).isEmpty)
        #expect(h.feed(clientFrame(opcode: Op.continuation, payload: Self.pattern(4))) == [.message(.binary(Self.pattern(4) + Self.pattern(4)))])
    }

    @Test func fragmentLimitCountsFramesOfOneMessage() {
        var h = Harness(limits: Limits(maxFragmentsPerMessage: 3))
        // Three frames make a message; the count starts again with the next.
        for _ in 0..<2 {
            #expect(h.feed(clientFrame(fin: false, opcode: Op.text, payload: [])).isEmpty)
            #expect(h.feed(clientFrame(fin: false, opcode: Op.continuation, payload: [])).isEmpty)
            #expect(h.feed(clientFrame(opcode: Op.continuation, payload: Array("ok".utf8))) == [.message(.text("ok"))])
        }
        // Control frames between fragments do not count.
        #expect(h.feed(clientFrame(fin: false, opcode: Op.text, payload: [])).isEmpty)
        #expect(h.feed(clientFrame(opcode: Op.ping, payload: [])) == [.ping([])])
        #expect(h.feed(clientFrame(fin: false, opcode: Op.continuation, payload: [])).isEmpty)
        #expect(h.feed(clientFrame(fin: false, opcode: Op.continuation, payload: [])).isEmpty)
        #expect(h.feed(clientFrame(fin: false, opcode: Op.continuation, payload: [])) == [.failed(.tooManyFragments(limit: 3))])
        #expect(h.takeOutput() == [0x8A, 0x00] + serverClose(1009), "the pong, then 1009")
    }

    @Test func limitAppliesPerMessageNotPerConnection() {
        var h = Harness(limits: Limits(maxMessageSize: 10))
        for _ in 0..<5 {
            #expect(h.feed(clientFrame(opcode: Op.binary, payload: Self.pattern(10))) == [.message(.binary(Self.pattern(10)))])
        }
        // Control frames do not count against it.
        #expect(h.feed(clientFrame(opcode: Op.ping, payload: Self.pattern(100))) == [.ping(Self.pattern(100))])
    }
}
