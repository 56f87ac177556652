/// A WebSocket endpoint: one type in one file, `<resource>_wsh.swift` under
/// the handler root, built with `swiftwebsocket-build`. A new instance serves
/// each connection, so stored properties are per-connection state; state
/// shared by connections (a chat room) lives in `static` properties, behind
/// a lock or in a `WebSocketGroup`.
///
/// ```swift
/// import SwiftWebSocket
///
/// struct Echo: WebSocketHandler {
///     func transferData(_ socket: WebSocket) throws {
///         while let message = try socket.receive() {
///             try socket.send(message)
///         }
///     }
/// }
/// ```
///
/// A handler runs on the Apache worker thread that owns the connection. A
/// Swift trap (a failed `!`, an out-of-range index) kills the whole httpd
/// child process and every connection it serves: throw instead.
///
/// This blocking style holds a thread for the connection's whole life; a
/// `WebSocketEventHandler` holds none while its connection is idle.
public protocol WebSocketHandler: WebSocketEndpoint {
    /// Exchanges messages until done. When it returns, the connection is
    /// closed with 1000 unless it was closed already; when it throws, with
    /// 1011, and the error is logged.
    mutating func transferData(_ socket: WebSocket) throws

    /// Chooses the close frame that answers the client's close (pywebsocket's
    /// `web_socket_passive_closing_handshake`): called when `transferData`
    /// returns after `receive()` reported the client's close, unless the
    /// handler already answered it with `socket.close(code:reason:)`.
    /// A nil code sends an empty close frame. The default echoes the
    /// client's code, as RFC 6455 5.5.1 suggests.
    mutating func passiveClosingHandshake(code: CloseCode?, reason: String) -> (code: CloseCode?, reason: String)
}

extension WebSocketHandler {
    public mutating func passiveClosingHandshake(code: CloseCode?, reason: String) -> (code: CloseCode?, reason: String) {
        (code, "")
    }
}
