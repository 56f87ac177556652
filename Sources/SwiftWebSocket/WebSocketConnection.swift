/// An open connection of a `WebSocketEventHandler`: what its callbacks get,
/// and what other code keeps to send to it. Every member works from any
/// thread and never waits for the client: a message is queued, and the
/// thread that drives the connection writes it (httpd's filters are not
/// thread-safe). A client that reads too slowly has a bounded queue
/// (`SwiftWebSocketOutboxSize`, `Limits.maxQueuedBytes`): past it, `send`
/// throws `WebSocketError.peerTooSlow` and the connection closes with 1008.
public final class WebSocketConnection: Sendable {
    /// The upgrade request this connection was accepted from.
    public let request: UpgradeRequest
    /// The subprotocol agreed in the handshake, if any.
    public let subprotocol: String?
    private let transport: any MessageTransport
    /// `SwiftWebSocketCloseTimeout`: how long an async handler may run on
    /// after its connection closed before it is logged.
    package let closeTimeout: Duration
    /// Where an async handler's task runs: the parked connection's own
    /// steps (`ConnectionExecutor`); nil on a held thread, where it runs
    /// on the concurrency runtime's threads.
    package let handlerExecutor: (any TaskExecutor)?

    package init(request: UpgradeRequest, subprotocol: String?, transport: any MessageTransport,
                 closeTimeout: Duration, handlerExecutor: (any TaskExecutor)?) {
        self.request = request
        self.subprotocol = subprotocol
        self.transport = transport
        self.closeTimeout = closeTimeout
        self.handlerExecutor = handlerExecutor
    }

    /// Logs to Apache's error log against this connection's request.
    public var logger: Logger { request.logger }

    /// Whether messages can still be sent.
    public var isOpen: Bool { transport.isOpen }

    /// Queues a whole message; throws `WebSocketError.closed` once the
    /// connection is closing, `.peerTooSlow` when its queue is full.
    public func send(_ message: Message) throws {
        try transport.send(message)
    }

    package func send(_ shared: SharedMessage) throws {
        try transport.send(shared)
    }

    /// Waits while what is queued for the client reaches half its bound,
    /// until the client read it or the connection closes.
    package func waitForRoomToSend() async {
        await transport.waitForRoomToSend()
    }

    /// Queues the next piece of a streamed message (an async handler's
    /// `MessageWriter`): it goes out between what was queued before the
    /// message began and what is queued after it ends.
    package func queueFragment(_ opcode: Opcode, _ piece: [UInt8], isFinal: Bool) throws {
        try transport.queue(.fragment(opcode, piece, isFinal: isFinal))
    }

    /// Queues a ping (an async handler's `ping()`); its pong comes to the
    /// handler as `PongListener`.
    package func queuePing(_ payload: [UInt8]) throws {
        try transport.queue(.ping(payload))
    }

    /// Waits while the pieces of a streamed message queued for the client
    /// reach half the queue's bound.
    package func waitForRoomToStream() async {
        await transport.waitForRoomToStream()
    }

    public func send(text: String) throws {
        try send(.text(text))
    }

    public func send(binary: [UInt8]) throws {
        try send(.binary(binary))
    }

    /// Starts the closing handshake after what was queued before it; `onClose`
    /// follows when the client answers (or after `SwiftWebSocketCloseTimeout`).
    /// Does nothing once closing.
    public func close(code: CloseCode = .normalClosure, reason: String = "") {
        transport.requestClose(code: code, reason: reason)
    }
}

/// How a `WebSocketConnection` reaches its connection: a parked connection's
/// driver, or the `WebSocket` of a held thread.
package protocol MessageTransport: AnyObject, Sendable {
    var isOpen: Bool { get }
    func send(_ message: Message) throws
    func send(_ shared: SharedMessage) throws
    /// Starts the closing handshake, or queues it for the driving thread.
    func requestClose(code: CloseCode, reason: String)
    /// Waits while the queue for the client holds half its bound or more.
    func waitForRoomToSend() async
    /// Queues what only the outbox carries (a streamed message's pieces,
    /// an awaited ping), from any thread, the owner's too.
    func queue(_ item: Outbox.Item) throws
    /// Waits while what goes between fragments holds half the bound.
    func waitForRoomToStream() async
}

extension WebSocket: MessageTransport {
    package func requestClose(code: CloseCode, reason: String) {
        try? close(code: code, reason: reason)
    }
}

extension Outbox {
    /// An async sender's backpressure: half the bound, so that a message
    /// sent after the wait has room below it.
    func waitForRoomToSend() async {
        await waitForRoom(below: limit / 2)
    }

    /// A streamed message's writer: its own pieces only, since what waits
    /// for the message's end cannot leave before it.
    func waitForRoomToStream() async {
        await waitForRoom(below: limit / 2, betweenFragments: true)
    }
}
