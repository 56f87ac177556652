import SwiftWebSocket

/// Tries to smuggle a header into the 101 through a CR LF in a value.
struct BadHeader: WebSocketHandler {
    func extraHandshake(_ request: UpgradeRequest, response: inout UpgradeResponse) throws {
        response.headers.append((name: "X-Note", value: "a\r\nX-Injected: 1"))
    }

    func transferData(_ socket: WebSocket) throws {}
}
