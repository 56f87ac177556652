/// What a `ParkedConnection` needs from its host: httpd's event MPM, through
/// the shim. Nothing here waits for the client, except `flush(waiting:)`
/// when asked to.
package protocol ParkedConnectionIO: AnyObject, Sendable {
    /// Reads what has arrived, without waiting: the count (at least one
    /// byte), 0 at the end of the stream, or nil when nothing is there yet.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(WebSocketError) -> Int?
    /// Hands `first` then `second` to the output filters, which keep what
    /// the socket does not take at once.
    func write(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(WebSocketError)
    /// Writes what the filters kept: what the socket takes now, or, when
    /// `waiting`, all of it (bounded by the write timeout). Returns whether
    /// output is still pending.
    func flush(waiting: Bool) throws(WebSocketError) -> Bool
    /// Has `ParkedConnection.timerFired()` run on a worker thread after
    /// `delay`. Any thread.
    func scheduleTimer(after delay: Duration)
    /// Shuts the socket down, so that the MPM hands the connection back
    /// (to be closed) at once.
    func shutdown()
    /// Any thread.
    func log(_ level: LogLevel, _ message: String)
    /// Whether the server is stopping this process: connections close with
    /// 1001.
    var isStopping: Bool { get }
    /// Runs `body`, which may call handler code, with this connection named
    /// on the thread (for a trap's report). Only while holding it.
    func runningHandlerCode(_ body: () -> Void)
}
