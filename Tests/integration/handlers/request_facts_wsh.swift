import SwiftWebSocket

/// Tells the client, one "name: value" line each, what the extra handshake
/// saw of its request; logs that it ran, so tests can tell that Apache's
/// access control kept it from running.
struct RequestFacts: WebSocketHandler {
    var facts: [String] = []

    mutating func extraHandshake(_ request: UpgradeRequest, response: inout UpgradeResponse) throws {
        request.logger.info("request_facts handshake ran")
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
            "tls-protocol: \(request.tlsVariables["SSL_PROTOCOL"] ?? "(none)")",
            "client-verify: \(request.tlsVariables["SSL_CLIENT_VERIFY"] ?? "(none)")",
            "client-dn: \(request.tlsVariables["SSL_CLIENT_S_DN"] ?? "(none)")",
        ]
    }

    func transferData(_ socket: WebSocket) throws {
        try socket.send(text: facts.joined(separator: "\n"))
    }
}
