import SwiftWebSocket

#if canImport(Glibc)
import Glibc
#endif

/// Misbehaves as the client's first text message says, for the fault
/// tests: "return" returns without closing, "throw" throws, "sleep N"
/// blocks N seconds without reading (so a close from the client waits),
/// "close-then-sleep N" closes, then blocks N seconds before returning.
struct Misbehaving: WebSocketHandler {
    struct Failure: Error {}

    func transferData(_ socket: WebSocket) throws {
        guard case .text(let command)? = try socket.receive() else { return }
        let words = command.split(separator: " ")
        let seconds = words.count > 1 ? UInt32(words[1]) ?? 0 : 0
        switch words.first {
        case "return":
            return
        case "throw":
            throw Failure()
        case "sleep":
            sleep(seconds)
        case "close-then-sleep":
            try socket.close(code: .goingAway, reason: "closing, then busy")
            sleep(seconds)
        default:
            try socket.send(text: "unknown command \(command)")
        }
    }
}
