/// A WebSocket endpoint: one type in one file, `<resource>_wsh.swift` under
/// the handler root, built with `swiftwebsocket-build`. A new instance serves
/// each connection, so stored properties are per-connection state.
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
public protocol WebSocketHandler {
    init()

    /// Runs after Apache's access checks, before the 101 is sent. Inspect the
    /// request, pick a subprotocol or add headers in `response`, or throw a
    /// `HandshakeRejection` to answer with an HTTP status instead. Any other
    /// error answers 500. The default accepts.
    mutating func extraHandshake(_ request: UpgradeRequest, response: inout UpgradeResponse) throws

    /// Exchanges messages until done. When it returns, the connection is
    /// closed with 1000 unless it was closed already; when it throws, with
    /// 1011, and the error is logged.
    mutating func transferData(_ socket: WebSocket) throws
}

extension WebSocketHandler {
    public mutating func extraHandshake(_ request: UpgradeRequest, response: inout UpgradeResponse) throws {}
}
