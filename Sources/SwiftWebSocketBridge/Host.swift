import CSwiftWebSocketABI
import SwiftWebSocket

/// The services table the shim registers in each post_config, before httpd
/// forks; read-only afterwards, so sharing it between threads is safe.
nonisolated(unsafe) var host = swiftws_host()

@_cdecl("swiftws_bridge_init")
public func swiftws_bridge_init(_ table: UnsafePointer<swiftws_host>) {
    host = table.pointee
}

/// The shim's non-blocking read, as `ConnectionIO` and `ParkedConnectionIO`
/// both report it: the count, 0 at the end, nil when nothing has arrived.
func readWithoutWaiting(_ io: UnsafeMutableRawPointer, into buffer: UnsafeMutableRawBufferPointer)
    throws(WebSocketError) -> Int? {
    let count = host.read(io, buffer.baseAddress, buffer.count)
    switch count {
    case 0...: return count
    case Int(SWIFTWS_READ_AGAIN): return nil
    default: throw .transportFailed("read failed")
    }
}
