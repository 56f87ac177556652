import SwiftWebSocket

/// Sends every message back as it came: text as text, binary as binary.
struct Echo: WebSocketHandler {
    func transferData(_ socket: WebSocket) throws {
        while let message = try socket.receive() {
            try socket.send(message)
        }
    }
}
