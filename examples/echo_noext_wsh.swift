import SwiftWebSocket

/// Echo that declines every extension, so messages travel uncompressed
/// whatever the client offers (mod_pywebsocket's echo_noext_wsh.py).
struct EchoNoExtensions: WebSocketHandler {
    func extraHandshake(_ request: UpgradeRequest, response: inout UpgradeResponse) throws {
        response.compression.isEnabled = false
    }

    func transferData(_ socket: WebSocket) throws {
        while let message = try socket.receive() {
            try socket.send(message)
        }
    }
}
