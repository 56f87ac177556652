/// The fuzzer's input as a source of choices: leading bytes pick a
/// configuration, the rest is the data under test. Reading past the end
/// gives zeros, so every input, the empty one too, is a valid test case.
struct FuzzInput {
    private let bytes: UnsafeRawBufferPointer
    private var index = 0

    init(_ start: UnsafeRawPointer, _ count: Int) {
        bytes = UnsafeRawBufferPointer(start: start, count: count)
    }

    mutating func byte() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }

    /// What is left, in libFuzzer's own buffer: it is exactly as long as
    /// the input, so AddressSanitizer sees a read past its end.
    mutating func rest() -> UnsafeRawBufferPointer {
        defer { index = bytes.count }
        return UnsafeRawBufferPointer(rebasing: bytes[min(index, bytes.count)...])
    }
}
