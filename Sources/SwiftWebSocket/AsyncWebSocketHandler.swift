/// A WebSocket endpoint written with async/await: one type in one file,
/// `<resource>_wsh.swift`, like the other styles.
///
/// ```swift
/// import SwiftWebSocket
///
/// struct EchoAsync: AsyncWebSocketHandler {
///     func handle(_ socket: AsyncWebSocket) async throws {
///         for try await message in socket.messages {
///             try await socket.send(message)
///         }
///     }
/// }
/// ```
///
/// `handle` runs as a task of Swift's concurrency runtime, started when the
/// connection opens. On httpd's event MPM the connection holds no Apache
/// worker while the task awaits: it waits in the MPM as an event handler's
/// does, and a worker reads and writes for it when there is something to
/// do. On the worker and prefork MPMs and over HTTP/2 a thread is held for
/// the connection, and the same handler works.
///
/// Returning closes the connection with 1000; throwing closes it with 1011
/// and logs the error. When the connection ends first (the client closed
/// or vanished, a timeout, a graceful restart) `messages` ends and the task
/// is cancelled; a task still running `SwiftWebSocketCloseTimeout` later is
/// logged.
///
/// Backpressure both ways: `send` waits while the client is behind, and
/// while `handle` does not take its messages the connection stops reading
/// after a few (`AsyncWebSocket.messages`), so TCP pushes back on the client.
public protocol AsyncWebSocketHandler: WebSocketEndpoint {
    func handle(_ socket: AsyncWebSocket) async throws
}
