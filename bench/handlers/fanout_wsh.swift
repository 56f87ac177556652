import SwiftWebSocket

/// `make bench-idle`'s endpoint: echoes each message to its sender, except
/// one starting with "broadcast:", which goes to every connection open on
/// /fanout in this process.
struct Fanout: WebSocketEventHandler {
    static let everyone = WebSocketGroup()

    func onOpen(_ connection: WebSocketConnection) {
        Self.everyone.join(connection)
    }

    func onMessage(_ message: Message, from connection: WebSocketConnection) throws {
        if case .text(let text) = message, text.hasPrefix("broadcast:") {
            try Self.everyone.broadcast(message)
        } else {
            try connection.send(message)
        }
    }

    func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String) {
        Self.everyone.leave(connection)
    }
}
