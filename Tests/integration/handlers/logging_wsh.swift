import SwiftWebSocket

/// Logs through `socket.logger` at debug and info, then echoes.
struct LogLines: WebSocketHandler {
    func transferData(_ socket: WebSocket) throws {
        socket.logger.debug("debug line from a handler")
        socket.logger.info("info line from a handler", metadata: ["peer": "\(socket.request.remoteAddress)"])
        while let message = try socket.receive() {
            try socket.send(message)
        }
    }
}
