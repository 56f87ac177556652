import SwiftWebSocket

/// Sends every message back as it came, written with async/await. On the
/// event MPM the connection holds no Apache worker while the task awaits.
struct EchoAsync: AsyncWebSocketHandler {
    func handle(_ socket: AsyncWebSocket) async throws {
        for try await message in socket.messages {
            try await socket.send(message)
        }
    }
}
