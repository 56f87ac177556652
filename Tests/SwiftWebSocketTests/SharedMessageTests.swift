import Testing
@testable import SwiftWebSocket

/// A broadcast's message framed once and compressed once per parameter set
/// for every member (`SharedMessage`, `ServerProtocol.prepareShared`).
@Suite struct SharedMessageTests {
    static let text = Array(String(repeating: "a broadcast that compresses well, ", count: 40).utf8)

    static func agreed(window: Int = 15) -> PerMessageDeflate {
        CompressedMessageTests.agreed(window: window, minimumSize: 64)
    }

    /// What a client's inflater, which keeps its window across messages,
    /// makes of one compressed payload.
    static func inflate(_ payload: [UInt8], with client: Inflater) -> [UInt8] {
        var inflated: [UInt8] = []
        let status = (payload + [0x00, 0x00, 0xFF, 0xFF]).withUnsafeBytes { client.inflate($0, into: &inflated, limit: 1 << 20) }
        #expect(status == .ok)
        return inflated
    }

    @Test func membersWithTheSameParametersShareOneCompressedPayload() throws {
        let shared = SharedMessage(.text(String(decoding: Self.text, as: UTF8.self)))
        var first = ServerProtocol(compression: Self.agreed())
        var second = ServerProtocol(compression: Self.agreed())
        let (firstFrame, secondFrame) = (first.prepareShared(shared), second.prepareShared(shared))
        let a = try #require(firstFrame?.compressedPayload)
        let b = try #require(secondFrame?.compressedPayload)
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in #expect(a.baseAddress == b.baseAddress, "one buffer, not a copy") }
        }
        #expect(a.count < Self.text.count / 5)
    }

    @Test func membersWithOtherWindowsGetTheirOwnCompression() throws {
        let shared = SharedMessage(.binary(Self.text))
        var wide = ServerProtocol(compression: Self.agreed(window: 15))
        var narrow = ServerProtocol(compression: Self.agreed(window: 9))
        let (wideFrame, narrowFrame) = (wide.prepareShared(shared), narrow.prepareShared(shared))
        let a = try #require(wideFrame?.compressedPayload)
        let b = try #require(narrowFrame?.compressedPayload)
        #expect(Self.inflate(a, with: try #require(Inflater(windowBits: 15))) == Self.text)
        #expect(Self.inflate(b, with: try #require(Inflater(windowBits: 9))) == Self.text)
    }

    @Test func ownMessagesAroundASharedOneDecodeWithOneClientWindow() throws {
        // With context takeover the client's window holds the shared
        // message, which this connection's compressor never saw: the next
        // own message must not refer back past it.
        var engine = ServerProtocol(compression: Self.agreed())
        let client = try #require(Inflater(windowBits: 15))
        let own = Self.text
        for round in 0..<3 {
            let frame = own.withUnsafeBytes { engine.prepareMessage(opcode: .binary, payload: $0) }
            #expect(frame?.isCompressed == true)
            let ownDecoded = Self.inflate(engine.compressedPayload, with: client) == own
            #expect(ownDecoded, "round \(round): the own message after a shared one decodes")
            engine.compressedPayloadWritten()
            // Other bytes than the own message's, so a reference that
            // counts back across it lands on the wrong ones.
            let other = Array(String(repeating: "something else entirely \(round); ", count: 30).utf8)
            let sharedFrame = engine.prepareShared(SharedMessage(.binary(other)))
            let payload = try #require(sharedFrame?.compressedPayload)
            let sharedDecoded = Self.inflate(payload, with: client) == other
            #expect(sharedDecoded, "round \(round): the shared message decodes")
        }
    }

    @Test func shortAndUncompressedMembersGetThePlainFrame() throws {
        let short = SharedMessage(.text("hi"))
        var compressed = ServerProtocol(compression: Self.agreed())
        var plain = ServerProtocol()
        let (shortFrame, plainFrame) = (compressed.prepareShared(short), plain.prepareShared(SharedMessage(.binary(Self.text))))
        let a = try #require(shortFrame)
        let b = try #require(plainFrame)
        #expect(a.compressedPayload == nil && b.compressedPayload == nil)
        var header: [UInt8] = []
        b.header.withUnsafeBytes { header = Array($0) }
        #expect(header == [0x82, 126, UInt8(Self.text.count >> 8), UInt8(Self.text.count & 0xFF)])
    }

    @Test func nothingIsFramedAfterTheClose() {
        var engine = ServerProtocol()
        _ = engine.close(code: .normalClosure)
        #expect(engine.prepareShared(SharedMessage(.text("late"))) == nil)
    }
}
