import SwiftWebSocket

/// "ping PAYLOAD" makes it ping the client with PAYLOAD; each pong that
/// comes back is reported as "pong PAYLOAD".
struct Ping: WebSocketHandler {
    func transferData(_ socket: WebSocket) throws {
        socket.onPong = { [unowned socket] payload in
            try? socket.send(text: "pong " + String(decoding: payload, as: UTF8.self))
        }
        while let message = try socket.receive() {
            if case .text(let text) = message, text.hasPrefix("ping ") {
                try socket.ping(Array(text.dropFirst(5).utf8))
            }
        }
    }
}
