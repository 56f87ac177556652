/// What a `WebSocket` needs from its host: the byte stream, a way to wait
/// for it, and a log. In httpd the bridge implements it over the
/// connection's filter chain (so mod_ssl and bytes the core already
/// buffered are honoured) and the error log; tests use an in-memory one.
package protocol ConnectionIO: AnyObject, Sendable {
    /// Reads what has arrived, without waiting: the count (at least one
    /// byte), 0 at the end of the stream, or nil when nothing is there yet.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(WebSocketError) -> Int?
    /// Waits until input may have arrived, `wake()` was called, or
    /// `timeout` passed (nil: no limit); the caller then looks at all
    /// three. A host that cannot wait for two things at once (httpd's
    /// mod_http2 built without pipes) waits for input alone, bounded by
    /// its own timeout.
    func wait(timeout: Duration?) throws(WebSocketError)
    /// Ends a `wait` in progress, or the next one. Any thread, any time,
    /// also after the connection ended.
    func wake()
    /// Writes `first` then `second` and flushes.
    func write(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(WebSocketError)
    /// Any thread; lines from other threads than the owner's may lose the
    /// request's log id.
    func log(_ level: LogLevel, _ message: String)
    /// The most detailed level the error log keeps for this connection.
    var logLevel: LogLevel { get }
    /// Whether the server is stopping (or restarting) this process: open
    /// connections close with 1001. A stop also wakes every `wait`.
    var isStopping: Bool { get }
    /// Throws `.wrongThread` unless the calling thread owns the connection,
    /// `.closed` once its request ended; checked before any state is
    /// touched, so a misused `WebSocket` stays intact.
    func checkAccess() throws(WebSocketError)
}
