import Testing
@testable import SwiftWebSocket
@testable import WebSocketProtocol

/// permessage-deflate (RFC 7692): negotiation, compression both ways, limits.
@Suite struct NegotiationTests {
    let options = DeflateOptions()

    @Test func noOfferNoExtension() {
        #expect(options.negotiate(nil) == nil)
        #expect(options.negotiate("x-webkit-deflate-frame") == nil)
    }

    @Test func plainOfferIsAcceptedWithOurWindowUnannounced() throws {
        let (agreed, response) = try #require(options.negotiate("permessage-deflate"))
        #expect(response == "permessage-deflate")
        #expect(agreed.serverWindowBits == 12)
        #expect(agreed.clientWindowBits == 15, "the client did not let us limit its window")
        #expect(!agreed.serverNoContextTakeover && !agreed.clientNoContextTakeover)
    }

    @Test func browserOfferLetsUsChooseTheClientWindow() throws {
        // What Chrome and Firefox send.
        let (agreed, response) = try #require(options.negotiate("permessage-deflate; client_max_window_bits"))
        #expect(response == "permessage-deflate; client_max_window_bits=12")
        #expect(agreed.clientWindowBits == 12)
    }

    // RFC 7692 section 7.1.3 and 7.1.2 examples.
    @Test(arguments: [
        ("permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=10", 10),
        ("permessage-deflate; server_max_window_bits=15", "permessage-deflate; server_max_window_bits=12", 12),
        ("permessage-deflate; server_max_window_bits=9", "permessage-deflate; server_max_window_bits=9", 9),
        ("permessage-deflate; server_max_window_bits=\"10\"", "permessage-deflate; server_max_window_bits=10", 10),
    ])
    func serverWindowRequests(offer: String, response: String, window: Int) throws {
        let (agreed, answer) = try #require(options.negotiate(offer))
        #expect(answer == response)
        #expect(agreed.serverWindowBits == window)
    }

    @Test func clientWindowValueIsLoweredToOurs() throws {
        let (agreed, response) = try #require(options.negotiate("permessage-deflate; client_max_window_bits=10"))
        #expect(response == "permessage-deflate; client_max_window_bits=10")
        #expect(agreed.clientWindowBits == 10)
        let (agreed15, response15) = try #require(options.negotiate("permessage-deflate; client_max_window_bits=15"))
        #expect(response15 == "permessage-deflate; client_max_window_bits=12")
        #expect(agreed15.clientWindowBits == 12)
    }

    @Test func contextTakeoverParametersAreEchoed() throws {
        let offer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        let (agreed, response) = try #require(options.negotiate(offer))
        #expect(response == "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        #expect(agreed.serverNoContextTakeover && agreed.clientNoContextTakeover)
    }

    @Test func firstOfferWeCanHonourWins() throws {
        // RFC 7692 5.2's example: a window-10 offer with a fallback.
        let header = "permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate; client_max_window_bits"
        let (_, response) = try #require(options.negotiate(header))
        #expect(response == "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12")
        // A window-8 request cannot be met by zlib: the fallback is taken.
        let (agreed, fallback) = try #require(options.negotiate(
            "permessage-deflate; server_max_window_bits=8, permessage-deflate"))
        #expect(fallback == "permessage-deflate")
        #expect(agreed.serverWindowBits == 12)
    }

    @Test(arguments: [
        "permessage-deflate; server_max_window_bits=8",
        "permessage-deflate; server_max_window_bits",          // value required
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=010",      // leading zero
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; server_no_context_takeover=1",    // takes no value
        "permessage-deflate; mystery_parameter",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=11",
        "permessage-deflate; server_max_window_bits=\"1 0\"",  // quoted, not a token
        "permessage-deflate; server_max_window_bits=\"10",     // unterminated
        "permessage-deflate;",
        "permessage-deflate, ; foo",
    ])
    func unhonourableOffersAreDeclined(offer: String) {
        #expect(options.negotiate(offer) == nil)
    }

    @Test func disabledOptionsDecline() {
        var off = options
        off.isEnabled = false
        #expect(off.negotiate("permessage-deflate") == nil)
    }

    @Test func extensionHeaderGrammar() throws {
        let offers = try #require(ExtensionOffer.parse(" foo ,bar; a=1 ; b=\"x\\y\", , permessage-deflate;c"))
        #expect(offers.map(\.name) == ["foo", "bar", "permessage-deflate"])
        #expect(offers[1].parameters == [.init(name: "a", value: "1"), .init(name: "b", value: "xy")])
        #expect(offers[2].parameters == [.init(name: "c", value: nil)])
        #expect(ExtensionOffer.parse("a b") == nil)
        #expect(ExtensionOffer.parse("a; =1") == nil)
    }
}

/// Compression and decompression through the engine.
@Suite struct CompressedMessageTests {
    static func agreed(window: Int = 15, clientWindow: Int = 15, serverReset: Bool = false, clientReset: Bool = false,
                       minimumSize: Int = 0) -> PerMessageDeflate {
        PerMessageDeflate(serverWindowBits: window, clientWindowBits: clientWindow,
                          serverNoContextTakeover: serverReset, clientNoContextTakeover: clientReset,
                          memoryLevel: 8, compressionLevel: 6, minimumSize: minimumSize)
    }

    /// A client compressor: the engine's Deflater, as a peer would use zlib.
    static func compress(_ text: String, with deflater: Deflater) -> [UInt8] {
        var output: [UInt8] = []
        let ok = Array(text.utf8).withUnsafeBytes { deflater.compress($0, into: &output) }
        precondition(ok)
        return output
    }

    static func compressedFrame(_ payload: [UInt8], opcode: UInt8 = Op.text, fin: Bool = true) -> [UInt8] {
        clientFrame(fin: fin, rsv: 0x4, opcode: opcode, payload: payload)
    }

    @Test(arguments: 9...15)
    func clientMessagesRoundTripAtEveryWindow(window: Int) throws {
        var harness = Harness(compression: Self.agreed(clientWindow: window))
        let client = try #require(Deflater(windowBits: window, memoryLevel: 8, level: 6))
        for i in 0..<5 {
            let text = String(repeating: "message \(i) with some repetition, ", count: 200)
            let events = harness.feed(Self.compressedFrame(Self.compress(text, with: client)), chunkSize: 7)
            #expect(events == [.message(.text(text))])
        }
    }

    @Test(arguments: 9...15)
    func serverMessagesRoundTripAtEveryWindow(window: Int) throws {
        var engine = ServerProtocol(compression: Self.agreed(window: window))
        let client = try #require(Inflater(windowBits: window))
        for i in 0..<5 {
            let text = Array(String(repeating: "reply \(i) again and again ", count: 300).utf8)
            let frame = try #require(text.withUnsafeBytes { engine.prepareMessage(opcode: .text, payload: $0) })
            #expect(frame.isCompressed)
            var header: [UInt8] = []
            frame.header.withUnsafeBytes { header = Array($0) }
            #expect(header[0] == 0xC1, "FIN + RSV1 + text")
            #expect(engine.compressedPayload.count < text.count / 10)
            var inflated: [UInt8] = []
            let payload = engine.compressedPayload + [0x00, 0x00, 0xFF, 0xFF]
            #expect(payload.withUnsafeBytes { client.inflate($0, into: &inflated, limit: 1 << 20) } == .ok)
            #expect(inflated == text)
        }
    }

    /// Sizes around zlib's 64 KiB scratch buffer, compressible and not, both
    /// ways through the engine's Deflater and Inflater; inflated up to an
    /// exact limit and with none (SwiftWebSocketMaxMessageSize's largest
    /// value is Int.max).
    @Test(arguments: [0, 1, 65_535, 65_536, 65_537, 300_000])
    func messagesAroundTheScratchSizeRoundTrip(size: Int) throws {
        var rng = XorShift(seed: UInt64(size) + 1)
        let noise = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let text = Array(String(repeating: "abcdefghij", count: size / 10 + 1).utf8.prefix(size))
        for payload in [noise, text] {
            let deflater = try #require(Deflater(windowBits: 15, memoryLevel: 8, level: 6))
            var compressed: [UInt8] = []
            #expect(payload.withUnsafeBytes { deflater.compress($0, into: &compressed) })
            compressed += Deflater.syncFlushTail
            for limit in [size, Int.max] {
                let inflater = try #require(Inflater(windowBits: 15))
                var inflated: [UInt8] = []
                #expect(compressed.withUnsafeBytes { inflater.inflate($0, into: &inflated, limit: limit) } == .ok)
                #expect(inflated == payload)
            }
        }
    }

    @Test func fragmentedCompressedMessageHasRSV1OnFirstFrameOnly() throws {
        let client = try #require(Deflater(windowBits: 15, memoryLevel: 8, level: 6))
        let compressed = Self.compress("fragmented and compressed, fragmented and compressed", with: client)
        let cut = compressed.count / 2
        var harness = Harness(compression: Self.agreed())
        let events = harness.feed(Self.compressedFrame(Array(compressed[..<cut]), fin: false)
                                  + clientFrame(opcode: Op.ping, payload: [7])
                                  + clientFrame(opcode: Op.continuation, payload: Array(compressed[cut...])))
        #expect(events == [.ping([7]), .message(.text("fragmented and compressed, fragmented and compressed"))])

        var bad = Harness(compression: Self.agreed())
        let failed = bad.feed(Self.compressedFrame(Array(compressed[..<cut]), fin: false)
                              + clientFrame(rsv: 0x4, opcode: Op.continuation, payload: Array(compressed[cut...])))
        #expect(failed == [.failed(.reservedBitsSet)])
    }

    @Test func uncompressedMessagesStillWork() {
        var harness = Harness(compression: Self.agreed())
        #expect(harness.feed(textFrame("plain")) == [.message(.text("plain"))])
    }

    @Test func contextTakeoverCarriesAcrossMessages() throws {
        // With takeover the second identical message compresses to a back
        // reference; it decodes only if the engine kept the window.
        let client = try #require(Deflater(windowBits: 15, memoryLevel: 8, level: 6))
        let text = "the same sentence, sent twice over one connection"
        let first = Self.compress(text, with: client)
        let second = Self.compress(text, with: client)
        #expect(second.count < first.count)
        var harness = Harness(compression: Self.agreed())
        #expect(harness.feed(Self.compressedFrame(first) + Self.compressedFrame(second))
                == [.message(.text(text)), .message(.text(text))])
    }

    @Test func clientNoContextTakeoverResetsOurInflater() throws {
        let text = "reset between messages, reset between messages"
        var harness = Harness(compression: Self.agreed(clientReset: true))
        for _ in 0..<3 {
            // A client without context takeover starts each message afresh.
            let client = try #require(Deflater(windowBits: 15, memoryLevel: 8, level: 6))
            #expect(harness.feed(Self.compressedFrame(Self.compress(text, with: client))) == [.message(.text(text))])
        }
    }

    @Test func serverNoContextTakeoverMakesEachMessageStandAlone() throws {
        var engine = ServerProtocol(compression: Self.agreed(serverReset: true))
        let text = Array(String(repeating: "standalone ", count: 50).utf8)
        var payloads: [[UInt8]] = []
        for _ in 0..<2 {
            _ = try #require(text.withUnsafeBytes { engine.prepareMessage(opcode: .text, payload: $0) })
            payloads.append(engine.compressedPayload)
        }
        #expect(payloads[0] == payloads[1], "no back references into the previous message")
        // Each decodes with a fresh inflater.
        for payload in payloads {
            let fresh = try #require(Inflater(windowBits: 15))
            var out: [UInt8] = []
            #expect((payload + [0, 0, 0xFF, 0xFF]).withUnsafeBytes { fresh.inflate($0, into: &out, limit: 1 << 20) } == .ok)
            #expect(out == text)
        }
    }

    @Test func shortMessagesAreSentUncompressed() throws {
        var engine = ServerProtocol(compression: Self.agreed(minimumSize: 64))
        let short = Array(repeating: UInt8(ascii: "a"), count: 63)
        let frame = try #require(short.withUnsafeBytes { engine.prepareMessage(opcode: .text, payload: $0) })
        #expect(!frame.isCompressed)
        let long = Array(repeating: UInt8(ascii: "a"), count: 64)
        #expect(try #require(long.withUnsafeBytes { engine.prepareMessage(opcode: .text, payload: $0) }).isCompressed)
    }

    @Test func inflateBombClosesWith1009AfterLittleWork() throws {
        // 64 MiB of zeros compresses to ~64 KiB; the limit is 1 MiB.
        let client = try #require(Deflater(windowBits: 15, memoryLevel: 8, level: 9))
        var bomb: [UInt8] = []
        let zeros = [UInt8](repeating: 0, count: 64 << 20)
        #expect(zeros.withUnsafeBytes { client.compress($0, into: &bomb) })
        #expect(bomb.count < 128 * 1024)
        var harness = Harness(limits: Limits(maxMessageSize: 1 << 20), compression: Self.agreed())
        harness.engine.receive(Self.compressedFrame(bomb, opcode: Op.binary))
        #expect(harness.drain() == [.failed(.messageTooBig(limit: 1 << 20))])
        #expect(harness.takeOutput() == serverClose(1009))
    }

    @Test func aParseWithLittleWorkLeftStopsAfterASliceAndResumes() throws {
        // 8 MiB of zeros compresses to about 8 KiB: one read's worth that a
        // parked step must not inflate whole.
        let client = try #require(Deflater(windowBits: 15, memoryLevel: 8, level: 9))
        var compressed: [UInt8] = []
        let zeros = [UInt8](repeating: 0, count: 8 << 20)
        #expect(zeros.withUnsafeBytes { client.compress($0, into: &compressed) })
        let wire = Self.compressedFrame(compressed, opcode: Op.binary)
        var engine = ServerProtocol(limits: Limits(maxMessageSize: 16 << 20), compression: Self.agreed())
        var parsed = 0, steps = 0
        while parsed < wire.count {
            var work = 256 * 1024
            parsed += wire.withUnsafeBytes { raw in engine.receive(UnsafeRawBufferPointer(rebasing: raw[parsed...]), work: &work) }
            steps += 1
            // A step stops after the slice that spent its work.
            #expect(work > -(2 << 20))
        }
        #expect(steps >= 8, "8 MiB inflated 256 KiB of work at a time")
        #expect(engine.nextEvent() == .message(.binary(zeros)))
    }

    @Test func compressedSizeIsBoundedFromTheHeader() {
        var harness = Harness(limits: Limits(maxMessageSize: 1000), compression: Self.agreed())
        let header = clientFrame(rsv: 0x4, opcode: Op.binary, payload: [], announcedLength: 1 << 30)
        #expect(harness.feed(header) == [.failed(.messageTooBig(limit: 1000))])
    }

    @Test func invalidDeflateDataCloses1007() {
        var harness = Harness(compression: Self.agreed())
        #expect(harness.feed(Self.compressedFrame([0xFF, 0xFF, 0xFF, 0xFF, 0xFF])) == [.failed(.invalidCompressedData)])
        #expect(harness.takeOutput() == serverClose(1007))
    }

    @Test func outputPastTheLimitIsReportedBeforeLaterBadData() throws {
        // zlib makes "xy", then meets an invalid block type in the same
        // call; in two calls the limit would stop it first.
        let client = try #require(Deflater(windowBits: 15, memoryLevel: 8, level: 6))
        var compressed: [UInt8] = []
        #expect(Array("xy".utf8).withUnsafeBytes { client.compress($0, into: &compressed, endOfMessage: false) })
        let inflater = try #require(Inflater(windowBits: 15))
        var output: [UInt8] = []
        #expect((compressed + [0xFF]).withUnsafeBytes { inflater.inflate($0, into: &output, limit: 1) } == .tooBig)
        #expect(output.count == 2)
    }

    @Test func invalidUTF8InsideCompressedTextFailsFast() throws {
        let client = try #require(Deflater(windowBits: 15, memoryLevel: 8, level: 6))
        var compressed: [UInt8] = []
        #expect(([0x61, 0xED, 0xA0, 0x80] as [UInt8]).withUnsafeBytes { client.compress($0, into: &compressed) })
        var harness = Harness(compression: Self.agreed())
        // Not final: the failure must come before the message ends.
        #expect(harness.feed(Self.compressedFrame(compressed, fin: false)) == [.failed(.invalidUTF8)])
    }

    @Test func invalidUTF8BeforeBadDeflateDataIsReportedHoweverItIsSplit() throws {
        let client = try #require(Deflater(windowBits: 15, memoryLevel: 8, level: 6))
        var compressed: [UInt8] = []
        #expect(([0x61, 0xFF] as [UInt8]).withUnsafeBytes { client.compress($0, into: &compressed, endOfMessage: false) })
        let frame = Self.compressedFrame(compressed + [0xFF], fin: false)
        for chunkSize in [1, frame.count] {
            var harness = Harness(compression: Self.agreed())
            #expect(harness.feed(frame, chunkSize: chunkSize) == [.failed(.invalidUTF8)])
        }
    }

    @Test func randomCompressedInputNeverTraps() {
        var rng = XorShift(seed: 7)
        for _ in 0..<3000 {
            var harness = Harness(limits: Limits(maxMessageSize: 4096), compression: Self.agreed())
            let size = Int.random(in: 0...300, using: &rng)
            let payload = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let events = harness.feed(Self.compressedFrame(payload, opcode: Op.binary),
                                      chunkSize: Int.random(in: 1...64, using: &rng))
            #expect(FuzzTests.checkInvariants(events, harness.engine, harness.takeOutput()))
        }
    }

    @Test func largeCompressedPayloadIsNotKeptAfterItIsWritten() throws {
        let compression = try #require(DeflateOptions().negotiate("permessage-deflate")?.0)
        var engine = ServerProtocol(compression: compression)
        var rng = XorShift(seed: 7)
        let incompressible = (0..<200_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let frame = incompressible.withUnsafeBytes { engine.prepareMessage(opcode: .binary, payload: $0) }
        #expect(frame?.isCompressed == true)
        #expect(engine.compressedPayload.capacity > ServerProtocol.retainedBufferCapacity)
        engine.compressedPayloadWritten()
        #expect(engine.compressedPayload.isEmpty)
        #expect(engine.compressedPayload.capacity <= ServerProtocol.retainedBufferCapacity)
    }

    @Test func fragmentOfAnotherTypeIsRefused() {
        var engine = ServerProtocol()
        let first = [UInt8(1)].withUnsafeBytes { engine.prepareFragment(opcode: .text, payload: $0, isFinal: false) }
        #expect(first != nil)
        #expect(engine.fragmentedMessageOpcode == .text)
        let mixed = [UInt8(2)].withUnsafeBytes { engine.prepareFragment(opcode: .binary, payload: $0, isFinal: true) }
        #expect(mixed == nil)
        let last = [UInt8(3)].withUnsafeBytes { engine.prepareFragment(opcode: .text, payload: $0, isFinal: true) }
        #expect(last != nil)
        #expect(engine.fragmentedMessageOpcode == nil)
    }
}
