import SwiftWebSocket

/// Answers the client's close with a code of its own choosing.
struct PassiveClose: WebSocketHandler {
    func transferData(_ socket: WebSocket) throws {
        while let message = try socket.receive() {
            try socket.send(message)
        }
    }

    func passiveClosingHandshake(code: CloseCode?, reason: String) -> (code: CloseCode?, reason: String) {
        (CloseCode(4321), "answered \(code.map { String($0.rawValue) } ?? "none")")
    }
}
