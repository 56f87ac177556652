/// A WebSocket endpoint written as callbacks, the shape of the browser's
/// WebSocket API: one type in one file, `<resource>_wsh.swift`, like a
/// `WebSocketHandler`.
///
/// ```swift
/// import SwiftWebSocket
///
/// struct Echo: WebSocketEventHandler {
///     func onMessage(_ message: Message, from connection: WebSocketConnection) throws {
///         try connection.send(message)
///     }
/// }
/// ```
///
/// On httpd's event MPM (2.4.63 and later) the connection holds no thread
/// between messages: it waits in the MPM, and a worker thread runs the
/// callback when a message arrives. On the worker or prefork MPM, and over
/// HTTP/2, the same handler runs on a thread held for the connection. Either
/// way the callbacks of one connection never run at the same time, and a
/// callback should return soon: while it runs, the connection takes no
/// input, and on the event MPM it holds one of the process's workers.
///
/// A callback that throws closes the connection with 1011 (the error is
/// logged). A Swift trap kills the httpd child process and every connection
/// it serves.
public protocol WebSocketEventHandler: WebSocketEndpoint {
    /// The handshake is done: the connection is open. Keep `connection` (in a
    /// `WebSocketGroup`, say) to send to it later from anywhere.
    mutating func onOpen(_ connection: WebSocketConnection) throws

    /// A whole message arrived.
    mutating func onMessage(_ message: Message, from connection: WebSocketConnection) throws

    /// The connection is closed and sends nothing more: `code` is the one the
    /// client's close frame carried (`.noStatusReceived` when it had none),
    /// or `.abnormalClosure` when the connection ended without one (the
    /// client vanished, a timeout, a protocol error). Called once, after
    /// `onOpen`; drop the connection from your groups here.
    mutating func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String)
}

extension WebSocketEventHandler {
    public mutating func onOpen(_ connection: WebSocketConnection) throws {}
    public mutating func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String) {}
}
