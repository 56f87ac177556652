/// The limits one connection enforces. Every limit has a default safe for
/// the open internet; the C module sets them from its directives.
public struct Limits: Sendable, Equatable {
    /// Largest message accepted, in bytes, after reassembly of its fragments.
    /// A message over it closes the connection with 1009 as soon as a frame
    /// header announces it, before its payload is read. The default admits
    /// Autobahn's 16 MiB cases; lower it where messages are small.
    public var maxMessageSize: Int = 16 * 1024 * 1024
    /// Most bytes other threads may have queued for this connection (see
    /// `WebSocket.send`) before it counts as too slow and is closed with
    /// 1008; senders never wait for a slow peer.
    public var maxQueuedBytes: Int = 16 * 1024 * 1024

    public init(maxMessageSize: Int = 16 * 1024 * 1024, maxQueuedBytes: Int = 16 * 1024 * 1024) {
        self.maxMessageSize = maxMessageSize
        self.maxQueuedBytes = maxQueuedBytes
    }
}
