import SwiftWebSocket

/// Keeps its WebSocket past transferData and uses it from another thread and
/// after the request ended. From another thread a send is queued for the
/// owner and a receive is refused; after the request, a send is refused.
/// None of it may touch freed memory.
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
            var outcome = 0
            do { _ = try socket.receive() } catch WebSocketError.wrongThread { outcome |= 1 } catch {}
            do { try socket.send(text: "from another thread"); outcome |= 2 } catch {}
            return UnsafeMutableRawPointer(bitPattern: outcome)
        }, box)
        var result: UnsafeMutableRawPointer?
        pthread_join(thread, &result)
        // This send first delivers what the other thread queued.
        try socket.send(text: result == UnsafeMutableRawPointer(bitPattern: 3)
                        ? "receive refused, send queued" : "other thread: unexpected outcome")
        kept = socket
    }
}
