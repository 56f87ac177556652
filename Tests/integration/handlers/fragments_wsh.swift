import SwiftWebSocket

/// "N" makes it send a text message "0,1,...,N-1," in N fragments, then a
/// binary message of N fragments of one byte each (0, 1, ...).
struct Fragments: WebSocketHandler {
    func transferData(_ socket: WebSocket) throws {
        while let message = try socket.receive() {
            guard case .text(let text) = message, let count = Int(text), count > 0 else {
                try socket.send(text: "expected a number")
                continue
            }
            for i in 0..<count {
                try socket.sendFragment(text: "\(i),", isFinal: i == count - 1)
            }
            for i in 0..<count {
                try socket.sendFragment(binary: [UInt8(truncatingIfNeeded: i)], isFinal: i == count - 1)
            }
        }
    }
}
