import Testing
@testable import SwiftWebSocket
@testable import WebSocketProtocol

/// A second extension, through `MessageExtension` alone: RSV2 marks a
/// message whose bytes are inverted. Nothing in the frame logic knows it.
private final class Inverting: MessageExtension {
    private(set) var messagesEnded = 0
    private(set) var largestPiece = 0

    var reservedBits: UInt8 { 0x20 }
    var decodeSlice: Int { 3 }
    func maxEncodedSize(forMessageLimit limit: UInt64) -> UInt64 { limit }

    func decode(_ payload: UnsafeRawBufferPointer, into message: inout MessageBuffer, limit: Int) -> DecodeOutcome {
        largestPiece = max(largestPiece, payload.count)
        guard message.count + payload.count <= limit else { return .tooBig }
        let inverted = payload.map { ~$0 }
        return inverted.withUnsafeBytes { message.appendInflated($0) } ? .ok : .refused
    }

    func endOfMessage(into message: inout MessageBuffer, limit: Int) -> DecodeOutcome {
        messagesEnded += 1
        return .ok
    }

    func encodes(byteCount: Int) -> Bool { true }

    func encode(_ payload: UnsafeRawBufferPointer, endOfMessage: Bool, into output: inout [UInt8]) -> Bool {
        output.append(contentsOf: payload.map { ~$0 })
        return true
    }

    func sharedEncoding(of shared: any SharedPayload) -> [UInt8]? { nil }
}

@Suite struct MessageExtensionTests {
    @Test func aMarkedMessageIsDecodedByItsExtensionASliceAtATime() {
        let inverting = Inverting()
        var engine = ServerProtocol(limits: Limits(), messageExtension: inverting)
        engine.receive(clientFrame(rsv: 2, opcode: 0x1, payload: Array("hello, extension".utf8).map { ~$0 }))
        #expect(engine.nextEvent() == .message(.text("hello, extension")))
        #expect(inverting.messagesEnded == 1)
        #expect(inverting.largestPiece == 3)
    }

    @Test func anUnmarkedMessagePassesAsItCame() {
        let inverting = Inverting()
        var engine = ServerProtocol(limits: Limits(), messageExtension: inverting)
        engine.receive(clientFrame(opcode: 0x1, payload: Array("plain".utf8)))
        #expect(engine.nextEvent() == .message(.text("plain")))
        #expect(inverting.messagesEnded == 0)
    }

    @Test func anotherExtensionsBitStillFailsTheConnection() {
        var engine = ServerProtocol(limits: Limits(), messageExtension: Inverting())
        engine.receive(clientFrame(rsv: 4, opcode: 0x1, payload: Array("rsv1".utf8)))
        #expect(engine.nextEvent() == .failed(.reservedBitsSet))
    }

    @Test func whatIsSentIsEncodedAndMarkedWithTheExtensionsBit() throws {
        var engine = ServerProtocol(limits: Limits(), messageExtension: Inverting())
        let frame = try #require(Array("hi".utf8).withUnsafeBytes { engine.prepareMessage(opcode: .text, payload: $0) })
        #expect(frame.isCompressed)
        #expect(frame.header.withUnsafeBytes { Array($0) } == [0x80 | 0x20 | 0x1, 2])
        #expect(engine.compressedPayload == Array("hi".utf8).map { ~$0 })
    }
}
