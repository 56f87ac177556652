/// What a `WebSocket` needs from its host: the byte stream and a log. In
/// httpd the bridge implements it over the connection's filter chain (so
/// mod_ssl and bytes the core already buffered are honoured) and the error
/// log; tests use an in-memory one.
package protocol ConnectionIO: AnyObject {
    /// Blocks until at least one byte is read. Returns the count, or 0 at the
    /// end of the stream.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(WebSocketError) -> Int
    /// Writes `first` then `second` and flushes.
    func write(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(WebSocketError)
    func log(_ level: LogLevel, _ message: String)
    /// Throws unless the calling thread may use the connection now; checked
    /// before any state is touched, so a misused `WebSocket` stays intact.
    func checkAccess() throws(WebSocketError)
}

extension ConnectionIO {
    package func checkAccess() throws(WebSocketError) {}
}

/// Apache's levels (APLOG_*), so the shim passes them through unchanged.
package enum LogLevel: Int32, Sendable {
    case error = 3, warning = 4, notice = 5, info = 6, debug = 7
}
