import SwiftWebSocket

/// Sends every message back as it came: text as text, binary as binary.
/// Event-style: on the event MPM the connection holds no thread while idle.
struct Echo: WebSocketEventHandler {
    func onMessage(_ message: Message, from connection: WebSocketConnection) throws {
        try connection.send(message)
    }
}
