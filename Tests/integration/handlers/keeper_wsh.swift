import SwiftWebSocket

/// Keeps its WebSocket past transferData and uses it from another thread and
/// after the request ended: both must fail cleanly, never touch freed memory.
#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) var kept: WebSocket?

struct Keeper: WebSocketHandler {
    func transferData(_ socket: WebSocket) throws {
        if let previous = kept {
            // The previous connection's request is over.
            do {
                try previous.send(text: "late")
                try socket.send(text: "late send succeeded")
            } catch {
                try socket.send(text: "late send refused: \(error)")
            }
        }
        var thread = pthread_t()
        let box = Unmanaged.passRetained(socket).toOpaque()
        pthread_create(&thread, nil, { raw in
            let socket = Unmanaged<WebSocket>.fromOpaque(raw!).takeRetainedValue()
            let failed = (try? socket.send(text: "from another thread")) == nil
            return UnsafeMutableRawPointer(bitPattern: failed ? 1 : 2)
        }, box)
        var result: UnsafeMutableRawPointer?
        pthread_join(thread, &result)
        try socket.send(text: result == UnsafeMutableRawPointer(bitPattern: 1)
                        ? "other thread refused" : "other thread wrote")
        kept = socket
    }
}
