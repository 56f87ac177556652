import SwiftWebSocket

/// Chat rooms: every message goes to every member of the sender's room,
/// the sender included. The room comes from the query (`/chat?room=lobby`;
/// without one, "lobby"). Each room is a named group: with
/// `SwiftWebSocketBroker` set its members may be on any child of any httpd
/// sharing the broker, and all see one order; without one, a room holds
/// the members of one process. Event-style: members wait in the event MPM
/// without a thread, and `broadcast` never waits for a slow one.
struct Chat: WebSocketEventHandler {
    var room = WebSocketGroup(named: "lobby")

    mutating func extraHandshake(_ request: UpgradeRequest, response: inout UpgradeResponse) throws {
        if let name = request.queryParameter("room"), !name.isEmpty {
            room = WebSocketGroup(named: name)
        }
    }

    func onOpen(_ connection: WebSocketConnection) {
        room.join(connection)
        connection.logger.debug("joined the chat", metadata: ["room": "\(room.name ?? "")", "members here": "\(room.count)"])
    }

    func onMessage(_ message: Message, from connection: WebSocketConnection) throws {
        try room.broadcast(message)
    }

    func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String) {
        room.leave(connection)
    }
}
