import Testing
@testable import SwiftWebSocket

/// `Masking.unmask` (RFC 6455 5.3) against a byte-by-byte reference.
@Suite struct MaskingTests {
    static func reference(_ bytes: [UInt8], key: [UInt8], offset: Int) -> [UInt8] {
        bytes.enumerated().map { i, byte in byte ^ key[(offset + i) % 4] }
    }

    @Test(arguments: 0...3)
    func matchesReferenceForEveryLength(keyOffset: Int) {
        let keys: [[UInt8]] = [[0x37, 0xFA, 0x21, 0x3D], [0, 0, 0, 0], [0xFF, 0x00, 0x80, 0x01], [1, 2, 3, 4]]
        for key in keys {
            for length in 0...40 {
                let input = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
                var output = input
                let next = output.withUnsafeMutableBytes { raw in
                    Masking.unmask(raw, key: MaskingKey(key[0], key[1], key[2], key[3]), keyOffset: keyOffset)
                }
                #expect(output == Self.reference(input, key: key, offset: keyOffset), "key \(key) length \(length)")
                #expect(next == (keyOffset + length) % 4)
            }
        }
    }

    @Test func matchesReferenceAtUnalignedStart() {
        // A slice starting at an odd address exercises the unaligned loads.
        let key: [UInt8] = [0xDE, 0xAD, 0xBE, 0xEF]
        for start in 0..<8 {
            let input = (0..<64).map { UInt8($0) }
            var buffer = input
            buffer.withUnsafeMutableBytes { raw in
                _ = Masking.unmask(UnsafeMutableRawBufferPointer(rebasing: raw[start...]),
                                   key: MaskingKey(key[0], key[1], key[2], key[3]), keyOffset: 1)
            }
            #expect(Array(buffer[..<start]) == Array(input[..<start]), "bytes before the slice untouched")
            #expect(Array(buffer[start...]) == Self.reference(Array(input[start...]), key: key, offset: 1))
        }
    }

    @Test func unmaskingInPiecesEqualsUnmaskingWhole() {
        let key = MaskingKey(9, 99, 199, 255)
        let input = (0..<100).map { UInt8(truncatingIfNeeded: $0 * 7) }
        var whole = input
        _ = whole.withUnsafeMutableBytes { Masking.unmask($0, key: key, keyOffset: 0) }
        for pieceSize in 1...13 {
            var pieces = input
            var offset = 0
            pieces.withUnsafeMutableBytes { raw in
                var start = 0
                while start < raw.count {
                    let end = min(start + pieceSize, raw.count)
                    offset = Masking.unmask(UnsafeMutableRawBufferPointer(rebasing: raw[start..<end]), key: key, keyOffset: offset)
                    start = end
                }
            }
            #expect(pieces == whole, "piece size \(pieceSize)")
        }
    }

    @Test func emptyBufferKeepsOffset() {
        var empty: [UInt8] = []
        let next = empty.withUnsafeMutableBytes { Masking.unmask($0, key: MaskingKey(1, 2, 3, 4), keyOffset: 3) }
        #expect(next == 3)
    }

    @Test func keyPatternStartsAtOffset() {
        let key = MaskingKey(1, 2, 3, 4)
        #expect(withUnsafeBytes(of: key.pattern(startingAt: 0)) { Array($0) } == [1, 2, 3, 4, 1, 2, 3, 4])
        #expect(withUnsafeBytes(of: key.pattern(startingAt: 3)) { Array($0) } == [4, 1, 2, 3, 4, 1, 2, 3])
        #expect(key[5] == 2)
    }
}
