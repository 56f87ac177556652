import SwiftWebSocket

/// A chat room: every message goes to every connection on /chat in this
/// httpd process. Each connection's thread writes only its own socket;
/// `broadcast` queues the message for the others' threads.
struct Chat: WebSocketHandler {
    static let room = WebSocketGroup()

    func transferData(_ socket: WebSocket) throws {
        Self.room.join(socket)
        defer { Self.room.leave(socket) }
        socket.logger.debug("joined the chat", metadata: ["members": "\(Self.room.count)"])
        while let message = try socket.receive() {
            Self.room.broadcast(message)
        }
    }
}
