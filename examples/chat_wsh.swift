import SwiftWebSocket

/// A chat room: every message goes to every connection on /chat in this
/// httpd process, the sender's included. Event-style: members wait in the
/// event MPM without a thread, and `broadcast` queues the message for each
/// (never waiting for a slow one).
struct Chat: WebSocketEventHandler {
    static let room = WebSocketGroup()

    func onOpen(_ connection: WebSocketConnection) {
        Self.room.join(connection)
        connection.logger.debug("joined the chat", metadata: ["members": "\(Self.room.count)"])
    }

    func onMessage(_ message: Message, from connection: WebSocketConnection) {
        Self.room.broadcast(message)
    }

    func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String) {
        Self.room.leave(connection)
    }
}
