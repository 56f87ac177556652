/// Where a connection's traffic is counted as it happens: in httpd, the
/// server's status counters and the connection's line in the connection
/// log. The engine calls it on the thread driving the connection, so an
/// implementation needs no lock of its own for per-connection totals.
package protocol TrafficMeter: AnyObject {
    /// A whole data message arrived: its bytes, and those its frames
    /// carried (fewer when compressed).
    func received(messageBytes: Int, wireBytes: Int)
    /// A message, or one fragment of it (`endsMessage` false), was framed
    /// to send.
    func sent(bytes: Int, wireBytes: Int, endsMessage: Bool)
    /// A close frame went out, or came in; nil: one without a code.
    func closeSent(code: CloseCode?, reason: String)
    func closeReceived(code: CloseCode?, reason: String)
    /// The connection is being closed because the child's memory budget
    /// ran out.
    func closedOverMemoryBudget()
}
