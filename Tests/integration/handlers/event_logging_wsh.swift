import SwiftWebSocket

/// Event-style: logs a warning through `connection.logger` in each
/// `onMessage` (on the event MPM, on whichever worker runs it), then echoes.
struct EventLogLines: WebSocketEventHandler {
    func onMessage(_ message: Message, from connection: WebSocketConnection) throws {
        connection.logger.warning("warning line from a parked callback")
        try connection.send(message)
    }
}
