import SwiftWebSocket

/// Closes the connection with the code and reason the client sends as a
/// text message "CODE REASON" (mod_pywebsocket's close_wsh.py).
struct Close: WebSocketHandler {
    func transferData(_ socket: WebSocket) throws {
        guard case .text(let line)? = try socket.receive() else { return }
        let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard let raw = parts.first.flatMap({ UInt16($0) }), CloseCode(raw).isValidOnWire else {
            try socket.close(code: .protocolError, reason: "expected \"CODE REASON\"")
            return
        }
        try socket.close(code: CloseCode(raw), reason: parts.count > 1 ? String(parts[1]) : "")
    }
}
