/// Errors a handler sees from `WebSocket`.
public enum WebSocketError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The connection is closed (by either side); nothing more can be sent.
    case closed
    /// Reading or writing failed: the peer vanished or a timeout expired.
    case transportFailed(String)

    public var description: String {
        switch self {
        case .closed: return "the WebSocket connection is closed"
        case .transportFailed(let why): return "connection I/O failed: \(why)"
        }
    }
}
