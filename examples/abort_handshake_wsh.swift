import SwiftWebSocket

/// Refuses every handshake with 403 Forbidden (mod_pywebsocket's
/// abort_handshake_wsh.py): the client gets an HTTP answer, no WebSocket.
struct AbortHandshake: WebSocketHandler {
    func extraHandshake(_ request: UpgradeRequest, response: inout UpgradeResponse) throws {
        throw HandshakeRejection(status: 403, headers: [("Cache-Control", "no-store")])
    }

    func transferData(_ socket: WebSocket) throws {}
}
