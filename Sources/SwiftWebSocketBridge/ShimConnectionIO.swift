#if canImport(Glibc)
import Glibc
#endif
import CSwiftWebSocketABI
import SwiftWebSocket

/// `ConnectionIO` over the shim's callbacks: reads and writes go through the
/// connection's input and output filters, log lines to the error log with
/// the request's log id.
///
/// The shim's context lives in the request pool and its filters are not
/// thread-safe, so I/O is refused from any thread but the one that opened
/// the connection, and after `detach()` (a handler may keep its `WebSocket`
/// past `transferData`).
final class ShimConnectionIO: ConnectionIO {
    private var io: UnsafeMutableRawPointer?
    private let owner = pthread_self()

    init(_ io: UnsafeMutableRawPointer) { self.io = io }

    /// Called when the request ends: every later call fails or is dropped.
    func detach() { io = nil }

    func checkAccess() throws(WebSocketError) {
        guard io != nil else { throw .closed }
        guard pthread_equal(owner, pthread_self()) != 0 else { throw .wrongThread }
    }

    /// The thread was checked by `WebSocket` on entry (`checkAccess`).
    private func usableIO() throws(WebSocketError) -> UnsafeMutableRawPointer {
        guard let io else { throw .closed }
        return io
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(WebSocketError) -> Int {
        let count = host.read(try usableIO(), buffer.baseAddress, buffer.count)
        switch count {
        case 0...: return count
        case Int(SWIFTWS_READ_TIMEOUT): throw .timedOut
        default: throw .transportFailed("read failed")
        }
    }

    func write(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(WebSocketError) {
        let io = try usableIO()
        guard host.write(io, first.baseAddress, first.count, second.baseAddress, second.count) == 0 else {
            throw .transportFailed("write failed")
        }
    }

    func log(_ level: LogLevel, _ message: String) {
        guard let io, pthread_equal(owner, pthread_self()) != 0 else { return }
        host.log(io, level.rawValue, message)
    }

    func addResponseHeader(name: String, value: String) {
        guard let io else { return }
        host.add_response_header(io, name, value)
    }
}
