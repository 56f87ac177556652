import Synchronization

/// A set of connections that receive the same messages: a chat room, a
/// feed's subscribers. Safe from any thread. Keep one in a `static` property
/// of the handler type; an event handler joins in `onOpen` and leaves in
/// `onClose`:
///
/// ```swift
/// struct Chat: WebSocketEventHandler {
///     static let room = WebSocketGroup()
///     func onOpen(_ connection: WebSocketConnection) { Self.room.join(connection) }
///     func onMessage(_ message: Message, from connection: WebSocketConnection) { Self.room.broadcast(message) }
///     func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String) { Self.room.leave(connection) }
/// }
/// ```
///
/// A blocking handler joins in `transferData` and leaves when it ends:
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
    private let members = Mutex<[ObjectIdentifier: any MessageRecipient]>([:])

    public init() {}

    public func join(_ member: any MessageRecipient) {
        members.withLock { $0[ObjectIdentifier(member)] = member }
    }

    public func leave(_ member: any MessageRecipient) {
        _ = members.withLock { $0.removeValue(forKey: ObjectIdentifier(member)) }
    }

    public var count: Int { members.withLock { $0.count } }

    /// Sends `message` to every member. Never waits for a slow one: each
    /// member's own driving thread writes (see `WebSocketConnection`); a
    /// member that is closed or too far behind is dropped from the group.
    /// Returns how many members it went to.
    @discardableResult
    public func broadcast(_ message: Message) -> Int {
        let recipients = members.withLock { Array($0.values) }
        var delivered = 0
        for member in recipients {
            do {
                try member.send(message)
                delivered += 1
            } catch {
                leave(member)
            }
        }
        return delivered
    }
}

/// What a `WebSocketGroup` holds: a `WebSocketConnection` or a `WebSocket`,
/// both sendable to from any thread.
public protocol MessageRecipient: AnyObject, Sendable {
    func send(_ message: Message) throws
}

extension WebSocket: MessageRecipient {}
extension WebSocketConnection: MessageRecipient {}
