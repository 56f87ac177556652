/// The limits one connection enforces. Every limit has a default safe for
/// the open internet; the C module sets them from its directives.
public struct Limits: Sendable, Equatable {
    /// Largest message accepted, in bytes, after reassembly of its fragments
    /// and after decompression. An uncompressed message over it closes the
    /// connection with 1009 as soon as a frame header announces it, before
    /// its payload is read; a compressed one as soon as its inflated size
    /// passes it. The default admits
    /// Autobahn's 16 MiB cases; lower it where messages are small.
    public var maxMessageSize: Int = 16 * 1024 * 1024
    /// Largest frame payload accepted, in bytes as it is on the wire
    /// (compressed, with permessage-deflate); nil (the default): no bound
    /// beyond `maxMessageSize`'s. A larger frame closes the connection with
    /// 1009 from its header. Browsers send a message as one frame, so this
    /// only helps where clients fragment.
    public var maxFrameSize: Int?
    /// Most frames one message may arrive in. Past it the connection closes
    /// with 1009: without a bound, a message of empty continuation frames
    /// would never end and never reach the size limit. The default admits
    /// Autobahn's 4 MiB messages in 64-byte fragments (65,536 frames).
    public var maxFragmentsPerMessage: Int = 100_000
    /// Most bytes other threads may have queued for this connection (see
    /// `WebSocket.send`) before it counts as too slow and is closed with
    /// 1008; senders never wait for a slow peer.
    public var maxQueuedBytes: Int = 16 * 1024 * 1024

    public init(maxMessageSize: Int = 16 * 1024 * 1024, maxFrameSize: Int? = nil,
                maxFragmentsPerMessage: Int = 100_000, maxQueuedBytes: Int = 16 * 1024 * 1024) {
        self.maxMessageSize = maxMessageSize
        self.maxFrameSize = maxFrameSize
        self.maxFragmentsPerMessage = maxFragmentsPerMessage
        self.maxQueuedBytes = maxQueuedBytes
    }
}
