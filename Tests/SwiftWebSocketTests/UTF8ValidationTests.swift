import Testing
@testable import SwiftWebSocket
@testable import WebSocketProtocol

/// `UTF8Validator` on its own, and text messages and close reasons through
/// `ServerProtocol` (RFC 6455 8.1, fail fast as Autobahn 6.x expects).
@Suite struct UTF8ValidationTests {
    static let valid: [[UInt8]] = [
        [],
        Array("plain ASCII".utf8),
        [0x00, 0x7F],
        [0xC2, 0x80], [0xDF, 0xBF],                    // 2-byte: U+0080, U+07FF
        [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF],        // U+0800, U+D7FF
        [0xEE, 0x80, 0x80], [0xEF, 0xBF, 0xBF],        // U+E000, U+FFFF
        [0xE2, 0x82, 0xAC],                            // €
        [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF], // U+10000, U+10FFFF
        [0xF0, 0x9D, 0x84, 0x9E],                      // 𝄞
        Array("κόσμε ж€𝄞 mixed".utf8),
    ]

    static let invalid: [[UInt8]] = [
        [0xC0, 0x80], [0xC1, 0xBF],                    // overlong 2-byte
        [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF],        // overlong 3-byte
        [0xF0, 0x80, 0x80, 0x80], [0xF0, 0x8F, 0xBF, 0xBF], // overlong 4-byte
        [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],        // surrogates
        [0xF4, 0x90, 0x80, 0x80],                      // U+110000
        [0xF5, 0x80, 0x80, 0x80], [0xF8], [0xFC], [0xFE], [0xFF],
        [0x80], [0xBF], [0x41, 0x80, 0x41],            // lone continuation bytes
        [0xC2, 0x41], [0xE2, 0x82, 0x41],              // lead without its continuation
        [0xC2], [0xE2, 0x82], [0xF0, 0x9D, 0x84],      // truncated at the end
    ]

    @Test(arguments: valid)
    func validSequences(_ bytes: [UInt8]) {
        #expect(UTF8Validator.isValid(bytes))
    }

    @Test(arguments: invalid)
    func invalidSequences(_ bytes: [UInt8]) {
        #expect(!UTF8Validator.isValid(bytes))
    }

    @Test func everyByteValueAlone() {
        for byte in 0...255 {
            #expect(UTF8Validator.isValid([UInt8(byte)]) == (byte < 0x80), "byte \(byte)")
        }
    }

    @Test func agreesWithStandardLibraryOnAllTwoByteInputsAfterPrefix() {
        // Every 2-byte pair, behind an ASCII run so the fast path runs first.
        let prefix = Array("abcdefghij".utf8)
        var mismatches: [[UInt8]] = []
        for a in 0...255 {
            for b in 0...255 {
                let bytes = prefix + [UInt8(a), UInt8(b)]
                let reference = String(validating: bytes, as: UTF8.self) != nil
                if UTF8Validator.isValid(bytes) != reference { mismatches.append([UInt8(a), UInt8(b)]) }
            }
        }
        #expect(mismatches.isEmpty)
    }

    @Test func agreesWithStandardLibraryOnRandomInput() {
        var rng = XorShift(seed: 7)
        let alphabet: [UInt8] = [0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEE, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF]
        var mismatches: [[UInt8]] = []
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0...8, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            let reference = String(validating: bytes, as: UTF8.self) != nil
            if UTF8Validator.isValid(bytes) != reference { mismatches.append(bytes) }
        }
        #expect(mismatches.isEmpty)
    }

    @Test func stateCarriesAcrossBuffers() {
        // 𝄞 = F0 9D 84 9E split at every point.
        let bytes: [UInt8] = [0x61, 0xF0, 0x9D, 0x84, 0x9E, 0x62]
        for split in 0...bytes.count {
            var validator = UTF8Validator()
            let first = Array(bytes[..<split]).withUnsafeBytes { validator.validate($0) }
            #expect(first)
            #expect(validator.isComplete == [0, 1, 5, 6].contains(split), "split \(split)")
            let second = Array(bytes[split...]).withUnsafeBytes { validator.validate($0) }
            #expect(second)
            #expect(validator.isComplete)
        }
    }

    @Test func surrogateRefusedAfterSplitLeadByte() {
        var validator = UTF8Validator()
        #expect([UInt8]([0xED]).withUnsafeBytes { validator.validate($0) })
        #expect(![UInt8]([0xA0, 0x80]).withUnsafeBytes { validator.validate($0) })
    }

    @Test func resetClearsPendingSequence() {
        var validator = UTF8Validator()
        #expect([UInt8]([0xE2]).withUnsafeBytes { validator.validate($0) })
        #expect(!validator.isComplete)
        validator.reset()
        #expect(validator.isComplete)
        #expect([UInt8]([0x41]).withUnsafeBytes { validator.validate($0) })
    }

    @Test(arguments: 0...20)
    func invalidByteInLongASCIIRun(offset: Int) {
        // Lengths around the 8-byte words of the fast path.
        for length in [offset + 1, 21, 24, 64] where offset < length {
            for bad: UInt8 in [0x80, 0xFF, 0xC0] {
                var bytes = [UInt8](repeating: 0x61, count: length)
                bytes[offset] = bad
                #expect(!UTF8Validator.isValid(bytes), "length \(length) offset \(offset) byte \(bad)")
                var validator = UTF8Validator()
                // Fail fast: the validator refuses within the buffer, not only at its end.
                let ok = bytes.withUnsafeBytes { validator.validate($0) }
                #expect(!ok)
            }
            var multi = [UInt8](repeating: 0x61, count: length)
            multi.insert(contentsOf: [0xE2, 0x82, 0xAC], at: offset)
            #expect(UTF8Validator.isValid(multi), "valid € at \(offset)")
        }
    }

    @Test(arguments: 0...20)
    func invalidByteInLongASCIITextMessage(offset: Int) {
        var payload = [UInt8](repeating: 0x20, count: 40)
        payload[offset] = 0xFE
        let result = run(clientFrame(opcode: Op.text, payload: payload))
        #expect(result.events == [.failed(.invalidUTF8)])
        #expect(result.output == serverClose(1007))
        #expect(result.state == .closed)
    }

    // MARK: Through text messages

    @Test(arguments: valid)
    func validTextMessage(_ bytes: [UInt8]) {
        let result = run(clientFrame(opcode: Op.text, payload: bytes))
        #expect(result.events == [.message(.text(String(decoding: bytes, as: UTF8.self)))])
        #expect(result.output.isEmpty)
    }

    @Test(arguments: invalid)
    func invalidTextMessageFailsWith1007(_ bytes: [UInt8]) {
        let result = run(clientFrame(opcode: Op.text, payload: bytes))
        #expect(result.events == [.failed(.invalidUTF8)])
        #expect(result.output == serverClose(1007))
        #expect(result.state == .closed)
    }

    @Test(arguments: 1...3)
    func fourByteCharacterSplitAcrossFragments(split: Int) {
        let clef: [UInt8] = [0xF0, 0x9D, 0x84, 0x9E]
        var h = Harness()
        #expect(h.feed(clientFrame(fin: false, opcode: Op.text, payload: [0x61] + clef[..<split])).isEmpty)
        #expect(h.feed(clientFrame(opcode: Op.continuation, payload: Array(clef[split...]) + [0x62])) == [.message(.text("a𝄞b"))])
        #expect(h.takeOutput().isEmpty)
    }

    @Test func characterSplitAcrossFourFragmentsWithPingBetween() {
        var h = Harness()
        h.feed(clientFrame(fin: false, opcode: Op.text, payload: [0xF0]))
        h.feed(clientFrame(fin: false, opcode: Op.continuation, payload: [0x9D]))
        #expect(h.feed(clientFrame(opcode: Op.ping, payload: [1])) == [.ping([1])])
        h.feed(clientFrame(fin: false, opcode: Op.continuation, payload: [0x84]))
        #expect(h.feed(clientFrame(opcode: Op.continuation, payload: [0x9E])) == [.message(.text("𝄞"))])
    }

    @Test func invalidSequenceFailsInFirstFragment() {
        var h = Harness()
        // The message is never finished: the failure comes from fragment one.
        let events = h.feed(clientFrame(fin: false, opcode: Op.text, payload: Array("κόσμε".utf8) + [0xED, 0xA0, 0x80] + Array("edited".utf8)))
        #expect(events == [.failed(.invalidUTF8)])
        #expect(h.takeOutput() == serverClose(1007))
        #expect(h.state == .closed)
    }

    @Test func invalidSequenceFailsBeforeFrameIsComplete() {
        var h = Harness()
        let frame = clientFrame(fin: false, opcode: Op.text, payload: [0x61, 0xC0, 0x80] + [UInt8](repeating: 0x61, count: 100))
        // Header (6 bytes) and the first three payload bytes only.
        #expect(h.feed(Array(frame.prefix(9))) == [.failed(.invalidUTF8)])
        #expect(h.takeOutput() == serverClose(1007))
    }

    @Test func truncatedSequenceAtEndOfMessageFails() {
        var h = Harness()
        #expect(h.feed(clientFrame(fin: false, opcode: Op.text, payload: [0x61, 0xE2])).isEmpty, "may still complete")
        #expect(h.feed(clientFrame(opcode: Op.continuation, payload: [0x82])) == [.failed(.invalidUTF8)])
        #expect(h.takeOutput() == serverClose(1007))
    }

    @Test func emptyFinalFragmentCannotCompleteSequence() {
        var h = Harness()
        h.feed(clientFrame(fin: false, opcode: Op.text, payload: [0xF0, 0x9D, 0x84]))
        #expect(h.feed(clientFrame(opcode: Op.continuation)) == [.failed(.invalidUTF8)])
        #expect(h.takeOutput() == serverClose(1007))
    }

    @Test func validatorResetsBetweenMessages() {
        var h = Harness()
        #expect(h.feed(textFrame("€")) == [.message(.text("€"))])
        // A binary message is not validated and leaves no state behind.
        #expect(h.feed(clientFrame(opcode: Op.binary, payload: [0xE2])) == [.message(.binary([0xE2]))])
        #expect(h.feed(clientFrame(opcode: Op.text, payload: [0x82, 0xAC])) == [.failed(.invalidUTF8)])
    }

    @Test func textFedOneByteAtATimeFailsAtTheBadByte() {
        var h = Harness()
        let frame = clientFrame(opcode: Op.text, payload: Array("abc".utf8) + [0xF4, 0x90] + Array("xyz".utf8))
        // 6 header bytes + "abc" + F4 are fine; 0x90 after F4 is not.
        #expect(h.feed(Array(frame.prefix(10)), chunkSize: 1).isEmpty)
        #expect(h.feed([frame[10]]) == [.failed(.invalidUTF8)])
    }
}
