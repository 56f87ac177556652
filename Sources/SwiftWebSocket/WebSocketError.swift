/// Errors a handler sees from `WebSocket`.
public enum WebSocketError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The connection is closed (by either side); nothing more can be sent.
    case closed
    /// Reading or writing failed: the peer vanished.
    case transportFailed(String)
    /// `receive`, `ping` or `sendFragment` was called from a thread other
    /// than the one running the handler; only `send` and `close` may be.
    case wrongThread
    /// A message sent from another thread found the connection too far
    /// behind (`Limits.maxQueuedBytes`): it is being closed with 1008.
    case peerTooSlow
    /// A whole message, or a fragment of another type, was sent while a
    /// message sent with `sendFragment` was unfinished.
    case fragmentedMessageInProgress
    /// A broadcast to a named group was larger than the largest message the
    /// server accepts (`SwiftWebSocketMaxMessageSize`, `limit` bytes): it
    /// went to no one.
    case messageTooBig(limit: Int)

    public var description: String {
        switch self {
        case .closed: return "the WebSocket connection is closed"
        case .transportFailed(let why): return "connection I/O failed: \(why)"
        case .wrongThread: return "WebSocket used from a thread other than its handler's for what only that thread may do"
        case .peerTooSlow: return "the peer reads too slowly; it is being disconnected"
        case .fragmentedMessageInProgress: return "a fragmented message is still being sent"
        case .messageTooBig(let limit): return "the message is larger than the \(limit) bytes a group's broadcast may carry"
        }
    }
}
