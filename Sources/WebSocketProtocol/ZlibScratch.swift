import Glibc
internal import CZlib

/// Where zlib writes before its output is appended to a message: one
/// buffer per thread, made on the thread's first compressed message and
/// freed when the thread ends.
///
/// Not `withUnsafeTemporaryAllocation`: above 1 KiB it allocates on the heap
/// (this toolchain never judges a larger stack allocation safe), so each
/// zlib call cost a 64 KiB malloc and free. Not a buffer per connection:
/// zlib runs only on the thread that owns the connection, one call at a
/// time, and httpd's worker threads are far fewer than its connections.
enum ZlibScratch {
    static let size = 64 * 1024

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let status = pthread_key_create(&key) { buffer in buffer?.deallocate() }
        precondition(status == 0, "pthread_key_create failed: \(status)")
        return key
    }()

    /// The calling thread's buffer of `size` bytes, for the length of `body`.
    static func withBuffer<Result>(_ body: (UnsafeMutableBufferPointer<Bytef>) -> Result) -> Result {
        let buffer: UnsafeMutableRawPointer
        if let existing = pthread_getspecific(key) {
            buffer = existing
        } else {
            buffer = .allocate(byteCount: size, alignment: 16)
            pthread_setspecific(key, buffer)
        }
        return body(UnsafeMutableBufferPointer(start: buffer.assumingMemoryBound(to: Bytef.self), count: size))
    }
}
