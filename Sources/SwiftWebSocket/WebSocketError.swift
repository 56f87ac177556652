/// Errors a handler sees from `WebSocket`.
public enum WebSocketError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The connection is closed (by either side); nothing more can be sent.
    case closed
    /// Reading or writing failed: the peer vanished.
    case transportFailed(String)
    /// Nothing arrived within httpd's `Timeout`.
    case timedOut
    /// The connection was used from a thread other than the one running its
    /// handler; its filters are not thread-safe.
    case wrongThread

    public var description: String {
        switch self {
        case .closed: return "the WebSocket connection is closed"
        case .transportFailed(let why): return "connection I/O failed: \(why)"
        case .timedOut: return "no data from the client within the timeout"
        case .wrongThread: return "WebSocket used from a thread other than its handler's"
        }
    }
}
