import SwiftWebSocket

/// Speaks chat.v2 or chat.v1, preferring v2 when the client offers both;
/// without either it still accepts, with no subprotocol. The first message
/// names the one agreed.
struct Subprotocol: WebSocketHandler {
    static let supported = ["chat.v2", "chat.v1"]

    func extraHandshake(_ request: UpgradeRequest, response: inout UpgradeResponse) throws {
        response.subprotocol = Self.supported.first { request.requestedSubprotocols.contains($0) }
    }

    func transferData(_ socket: WebSocket) throws {
        try socket.send(text: socket.subprotocol ?? "none")
        while let message = try socket.receive() {
            try socket.send(message)
        }
    }
}
