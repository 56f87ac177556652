/// How a connection notices a peer that vanished or went quiet. The C module
/// sets these from `SwiftWebSocketPingInterval`, `SwiftWebSocketPingTimeout`,
/// `SwiftWebSocketIdleTimeout`, `SwiftWebSocketCloseTimeout` and
/// `SwiftWebSocketMessageTimeout`.
public struct Keepalive: Sendable, Equatable {
    /// After this long without hearing from the peer, ping it; nil: never.
    /// The default is Python websockets' (20 s): it finds half-open TCP
    /// connections, which otherwise hold their thread forever.
    public var pingInterval: Duration?
    /// A peer that sends nothing within this long after a ping (the pong, or
    /// anything else) is gone: the connection is closed with 1011. Default
    /// 20 s.
    public var pingTimeout: Duration
    /// Close with 1001 after this long without a message in either
    /// direction, however lively the pings; nil (the default): never.
    public var idleTimeout: Duration?
    /// How long to wait for the peer's close frame after sending ours
    /// before dropping the connection; default 10 s.
    public var closeTimeout: Duration
    /// A message whose first frame came this long ago and is still
    /// incomplete closes the connection with 1008; nil: never. Default
    /// 5 minutes: a 16 MiB message at half a megabit a second.
    public var messageTimeout: Duration?

    public init(pingInterval: Duration? = .seconds(20), pingTimeout: Duration = .seconds(20),
                idleTimeout: Duration? = nil, closeTimeout: Duration = .seconds(10),
                messageTimeout: Duration? = .seconds(300)) {
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.idleTimeout = idleTimeout
        self.closeTimeout = closeTimeout
        self.messageTimeout = messageTimeout
    }
}

extension Keepalive {
    /// The same times in nanoseconds, worked out once per connection for
    /// the receive loop, which adds them to instants on every pass.
    package struct Nanoseconds {
        package let pingInterval: Int64?
        package let pingTimeout: Int64
        package let idleTimeout: Int64?
        package let closeTimeout: Int64
        package let messageTimeout: Int64?

        package init(_ keepalive: Keepalive) {
            messageTimeout = keepalive.messageTimeout?.clampedNanoseconds
            pingInterval = keepalive.pingInterval?.clampedNanoseconds
            pingTimeout = keepalive.pingTimeout.clampedNanoseconds
            idleTimeout = keepalive.idleTimeout?.clampedNanoseconds
            closeTimeout = keepalive.closeTimeout.clampedNanoseconds
        }
    }
}
