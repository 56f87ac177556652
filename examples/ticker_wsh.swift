#if canImport(Glibc)
import Glibc
#endif
import SwiftWebSocket

/// Sends the time (Unix seconds) to every connected client once a second:
/// one task per child broadcasts to the group, and the members wait with no
/// thread held (on the event MPM, no Apache worker either) between ticks.
struct Ticker: AsyncWebSocketHandler {
    static let members = WebSocketGroup()
    /// Started by the child's first connection (a static is made when first
    /// used): never in httpd's parent process, before it forks.
    static let ticking = Task {
        while true {
            try await Task.sleep(for: .seconds(1))
            _ = try? members.broadcast(.text("\(time(nil))"))
        }
    }

    func handle(_ socket: AsyncWebSocket) async throws {
        _ = Self.ticking
        Self.members.join(socket)
        defer { Self.members.leave(socket) }
        // What the client sends is not for us: wait for its close.
        for try await _ in socket.messages {}
    }
}
