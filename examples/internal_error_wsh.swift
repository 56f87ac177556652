import SwiftWebSocket

/// Fails after the handshake (mod_pywebsocket's internal_error_wsh.py): the
/// error it throws closes the connection with 1011 and is logged with the
/// request's log id.
struct InternalError: WebSocketHandler {
    struct Failure: Error, CustomStringConvertible {
        var description: String { "internal_error_wsh fails on purpose" }
    }

    func transferData(_ socket: WebSocket) throws {
        throw Failure()
    }
}
