import SwiftWebSocket

/// Tells the client, one "name: value" line each, what the extra handshake
/// saw of its request.
struct RequestFacts: WebSocketHandler {
    var facts: [String] = []

    mutating func extraHandshake(_ request: UpgradeRequest, response: inout UpgradeResponse) throws {
        facts = [
            "resource: \(request.resource)",
            "query: \(request.query ?? "(none)")",
            "origin: \(request.origin ?? "(none)")",
            "subprotocols: \(request.requestedSubprotocols.joined(separator: ","))",
            "extensions: \(request.requestedExtensions.map(\.name).joined(separator: ","))",
            "cookies: \(request.cookies.map { "\($0.name)=\($0.value)" }.joined(separator: ","))",
            "remote: \(request.remoteAddress)",
            "user: \(request.user ?? "(none)")",
            "secure: \(request.isSecure)",
            "x-test: \(request.header("x-test") ?? "(none)")",
        ]
    }

    func transferData(_ socket: WebSocket) throws {
        try socket.send(text: facts.joined(separator: "\n"))
    }
}
