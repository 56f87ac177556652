import CSwiftWebSocketABI
import SwiftWebSocket

/// `ConnectionIO` over the shim's callbacks: reads and writes go through the
/// connection's input and output filters, log lines to the error log with
/// the request's log id.
final class ShimConnectionIO: ConnectionIO {
    private let io: UnsafeMutableRawPointer

    init(_ io: UnsafeMutableRawPointer) { self.io = io }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(WebSocketError) -> Int {
        let count = host.read(io, buffer.baseAddress, buffer.count)
        guard count >= 0 else { throw .transportFailed("read failed") }
        return count
    }

    func write(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(WebSocketError) {
        guard host.write(io, first.baseAddress, first.count, second.baseAddress, second.count) == 0 else {
            throw .transportFailed("write failed")
        }
    }

    func log(_ level: LogLevel, _ message: String) {
        host.log(io, level.rawValue, message)
    }

    func addResponseHeader(name: String, value: String) {
        host.add_response_header(io, name, value)
    }
}
