import Testing
@testable import SwiftWebSocket
@testable import WebSocketProtocol

/// Server frame headers (`EncodedFrameHeader`, `prepareMessage`) and the
/// header parser on its own.
@Suite struct FrameEncodingTests {
    static func bytes(_ header: EncodedFrameHeader) -> [UInt8] {
        header.withUnsafeBytes { Array($0) }
    }

    static let lengthCases: [(Int, [UInt8])] = [
        (0, [0x81, 0x00]),
        (1, [0x81, 0x01]),
        (125, [0x81, 0x7D]),
        (126, [0x81, 0x7E, 0x00, 0x7E]),
        (65535, [0x81, 0x7E, 0xFF, 0xFF]),
        (65536, [0x81, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]),
        (0x0123_4567_89AB, [0x81, 0x7F, 0, 0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB]),
    ]

    @Test(arguments: lengthCases)
    func textHeaderLengths(length: Int, expected: [UInt8]) {
        let header = EncodedFrameHeader(fin: true, opcode: .text, payloadLength: length)
        #expect(header.count == expected.count)
        #expect(Self.bytes(header) == expected)
    }

    @Test func opcodesFinAndReservedBits() {
        #expect(Self.bytes(EncodedFrameHeader(fin: true, opcode: .binary, payloadLength: 3)) == [0x82, 0x03])
        #expect(Self.bytes(EncodedFrameHeader(fin: false, opcode: .text, payloadLength: 3)) == [0x01, 0x03])
        #expect(Self.bytes(EncodedFrameHeader(fin: true, opcode: .continuation, payloadLength: 0)) == [0x80, 0x00])
        #expect(Self.bytes(EncodedFrameHeader(fin: true, opcode: .close, payloadLength: 2)) == [0x88, 0x02])
        #expect(Self.bytes(EncodedFrameHeader(fin: true, opcode: .ping, payloadLength: 0)) == [0x89, 0x00])
        #expect(Self.bytes(EncodedFrameHeader(fin: true, opcode: .pong, payloadLength: 5)) == [0x8A, 0x05])
        #expect(Self.bytes(EncodedFrameHeader(fin: true, reservedBits: FrameHeader.rsv1, opcode: .binary, payloadLength: 1)) == [0xC2, 0x01])
    }

    @Test func prepareMessageWhileOpen() throws {
        var engine = ServerProtocol()
        let framed = engine.messageHeader(opcode: .binary, payload: [UInt8](repeating: 0, count: 300))
        let header = try #require(framed)
        #expect(header == [0x82, 0x7E, 0x01, 0x2C])
    }

    @Test func prepareMessageIsNilAfterClose() {
        var engine = ServerProtocol()
        engine.close()
        #expect(engine.state == .closeSent)
        let framed = engine.messageHeader(opcode: .text, payload: [1])
        #expect(framed == nil)
    }

    @Test func prepareMessageIsNilAfterPeerCloseOrFailure() {
        var closed = Harness()
        closed.feed(closeFrame(code: 1000))
        let afterClose = closed.engine.messageHeader(opcode: .binary, payload: [1])
        #expect(afterClose == nil)
        var failed = Harness()
        failed.feed(clientFrame(rsv: 2, opcode: Op.binary))
        let afterFailure = failed.engine.messageHeader(opcode: .binary, payload: [1])
        #expect(afterFailure == nil)
    }

    @Test func opcodeClassification() {
        #expect(Opcode.close.isControl && Opcode.ping.isControl && Opcode.pong.isControl)
        #expect(!Opcode.text.isControl && !Opcode.binary.isControl && !Opcode.continuation.isControl)
        for raw in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] as [UInt8] {
            #expect(Opcode(rawValue: raw) == nil)
        }
    }

    // MARK: Header parser

    static func parse(_ bytes: [UInt8], allowing allowed: UInt8 = 0) throws(ProtocolViolation) -> FrameHeader.ParseResult {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(ProtocolViolation) in try FrameHeader.parseClientFrame(raw, allowedReservedBits: allowed) }
        }
        return try result.get()
    }

    @Test func parserReportsHowManyBytesItNeeds() throws {
        #expect(try Self.parse([]) == .needMore(2))
        #expect(try Self.parse([0x81]) == .needMore(2))
        #expect(try Self.parse([0x81, 0x85]) == .needMore(6))
        #expect(try Self.parse([0x82, 0xFE, 0x01]) == .needMore(8))
        #expect(try Self.parse([0x82, 0xFF, 0, 0, 0]) == .needMore(14))
    }

    @Test func parserReadsRFCExampleHeader() throws {
        let frame: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        let expected = FrameHeader(fin: true, reservedBits: 0, opcode: .text, payloadLength: 5,
                                   maskingKey: MaskingKey(0x37, 0xFA, 0x21, 0x3D))
        #expect(try Self.parse(frame) == .header(expected, length: 6))
    }

    @Test func parserReadsExtendedLengths() throws {
        let key = MaskingKey(1, 2, 3, 4)
        let medium = clientFrame(fin: false, opcode: Op.binary, maskKey: [1, 2, 3, 4], announcedLength: 0xABCD)
        #expect(try Self.parse(medium) == .header(FrameHeader(fin: false, reservedBits: 0, opcode: .binary, payloadLength: 0xABCD, maskingKey: key), length: 8))
        let long = clientFrame(opcode: Op.continuation, maskKey: [1, 2, 3, 4], announcedLength: 0x7FFF_FFFF_FFFF_FFFF)
        #expect(try Self.parse(long) == .header(FrameHeader(fin: true, reservedBits: 0, opcode: .continuation, payloadLength: 0x7FFF_FFFF_FFFF_FFFF, maskingKey: key), length: 14))
    }

    @Test func parserAllowsNegotiatedReservedBitOnDataFramesOnly() throws {
        let parsed = try Self.parse(clientFrame(rsv: 4, opcode: Op.text), allowing: FrameHeader.rsv1)
        guard case .header(let header, _) = parsed else { Issue.record("no header"); return }
        #expect(header.reservedBits == FrameHeader.rsv1)
        #expect(throws: ProtocolViolation.reservedBitsSet) {
            try Self.parse(clientFrame(rsv: 4, opcode: Op.ping), allowing: FrameHeader.rsv1)
        }
        #expect(throws: ProtocolViolation.reservedBitsSet) {
            try Self.parse(clientFrame(rsv: 2, opcode: Op.text), allowing: FrameHeader.rsv1)
        }
    }

    @Test func parserFailsOnTwoBytesWhereItCan() {
        // These need only the first two bytes to be judged.
        #expect(throws: ProtocolViolation.unmaskedFrame) { try Self.parse([0x81, 0x05]) }
        #expect(throws: ProtocolViolation.reservedOpcode(0xB)) { try Self.parse([0x8B, 0x80]) }
        #expect(throws: ProtocolViolation.reservedBitsSet) { try Self.parse([0x91, 0x80]) }
        #expect(throws: ProtocolViolation.fragmentedControlFrame) { try Self.parse([0x09, 0x80]) }
        #expect(throws: ProtocolViolation.controlFrameTooLong(126)) { try Self.parse([0x89, 0xFE]) }
    }
}
