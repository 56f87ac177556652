import Synchronization

/// A set of connections that receive the same messages: a chat room, a
/// feed's subscribers. Safe from any thread. Keep one in a `static` property
/// of the handler type, `join` in `transferData` and `leave` when it ends.
///
/// ```swift
/// struct Chat: WebSocketHandler {
///     static let room = WebSocketGroup()
///     func transferData(_ socket: WebSocket) throws {
///         Self.room.join(socket)
///         defer { Self.room.leave(socket) }
///         while let message = try socket.receive() { Self.room.broadcast(message) }
///     }
/// }
/// ```
public final class WebSocketGroup: Sendable {
    private let members = Mutex<[ObjectIdentifier: WebSocket]>([:])

    public init() {}

    public func join(_ socket: WebSocket) {
        members.withLock { $0[ObjectIdentifier(socket)] = socket }
    }

    public func leave(_ socket: WebSocket) {
        _ = members.withLock { $0.removeValue(forKey: ObjectIdentifier(socket)) }
    }

    public var count: Int { members.withLock { $0.count } }

    /// Sends `message` to every member. Never waits for a slow one: each
    /// member's own thread writes (see `WebSocket.send`); a member that is
    /// closed or too far behind is dropped from the group. Returns how many
    /// members it went to.
    @discardableResult
    public func broadcast(_ message: Message) -> Int {
        let recipients = members.withLock { Array($0.values) }
        var delivered = 0
        for socket in recipients {
            do {
                try socket.send(message)
                delivered += 1
            } catch {
                leave(socket)
            }
        }
        return delivered
    }
}
