import SwiftWebSocket

/// Reads a cookie and sets one (mod_pywebsocket's cookie_wsh.py): counts
/// the client's visits in `ws-visits`, tells it the count it arrived with.
struct Cookie: WebSocketHandler {
    var visits = 0

    mutating func extraHandshake(_ request: UpgradeRequest, response: inout UpgradeResponse) throws {
        visits = request.cookie("ws-visits").flatMap { Int($0) } ?? 0
        response.headers.append(("Set-Cookie", "ws-visits=\(visits + 1); Path=/; HttpOnly; SameSite=Lax"))
    }

    func transferData(_ socket: WebSocket) throws {
        try socket.send(text: "ws-visits=\(visits)")
        while let message = try socket.receive() {
            try socket.send(message)
        }
    }
}
