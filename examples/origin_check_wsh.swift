import SwiftWebSocket

/// Accepts only pages served from one origin (mod_pywebsocket's
/// origin_check_wsh.py): a browser always sends `Origin`, so this stops
/// other sites' pages from using the endpoint with the visitor's cookies.
/// For a whole server or <Location>, SwiftWebSocketAllowedOrigins does the
/// same without code.
struct OriginCheck: WebSocketHandler {
    static let allowedOrigin = "http://example.com"

    func extraHandshake(_ request: UpgradeRequest, response: inout UpgradeResponse) throws {
        guard request.origin == Self.allowedOrigin else {
            request.logger.info("refusing Origin \(request.origin ?? "(none)")")
            throw HandshakeRejection(status: 403)
        }
    }

    func transferData(_ socket: WebSocket) throws {
        try socket.send(text: "welcome, \(Self.allowedOrigin)")
        while let message = try socket.receive() {
            try socket.send(message)
        }
    }
}
