/// What every handler style has: a fresh instance per connection, and a say
/// in the opening handshake. A handler conforms to `WebSocketHandler`
/// (blocking: one thread per connection) or `WebSocketEventHandler`
/// (callbacks: no thread while idle), not to this alone.
public protocol WebSocketEndpoint {
    init()

    /// Runs after Apache's access checks, before the 101 is sent. Inspect the
    /// request, pick a subprotocol, add headers or decline compression in
    /// `response`, or throw a `HandshakeRejection` to answer with an HTTP
    /// status instead. Any other error answers 500. The default accepts.
    mutating func extraHandshake(_ request: UpgradeRequest, response: inout UpgradeResponse) throws
}

extension WebSocketEndpoint {
    public mutating func extraHandshake(_ request: UpgradeRequest, response: inout UpgradeResponse) throws {}
}
