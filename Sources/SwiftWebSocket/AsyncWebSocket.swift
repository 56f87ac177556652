import Synchronization

/// An open connection of an `AsyncWebSocketHandler`. Every member works
/// from any task or thread; what is sent is queued and written by the
/// thread that drives the connection (httpd's filters are not
/// thread-safe).
public final class AsyncWebSocket: Sendable {
    /// The upgrade request this connection was accepted from.
    public var request: UpgradeRequest { connection.request }
    /// The subprotocol agreed in the handshake, if any.
    public var subprotocol: String? { connection.subprotocol }
    /// Logs to Apache's error log against this connection's request.
    public var logger: Logger { connection.logger }
    /// Whether messages can still be sent.
    public var isOpen: Bool { connection.isOpen }

    /// The messages as they arrive; the sequence ends when the connection
    /// closes (`peerCloseCode` and `peerCloseReason` then say why). While
    /// the handler does not take them, at most 16 messages or 64 KiB (and
    /// what one read brought) wait: then the connection stops reading.
    public let messages: Messages

    /// The code of the client's close frame: nil until the connection
    /// closed, and when the client's frame had none or it sent none.
    public var peerCloseCode: CloseCode? { ending.withLock { $0.peerCloseCode } }
    public var peerCloseReason: String { ending.withLock { $0.peerCloseReason } }

    private let connection: WebSocketConnection
    private let inbound: InboundMessages
    private let pings: PendingPings
    /// A `withMessageWriter` body runs: one streamed message at a time.
    private let isStreaming = Atomic(false)

    private struct Ending {
        var isClosed = false
        var peerCloseCode: CloseCode?
        var peerCloseReason = ""
        /// Tasks in `close(code:reason:)`, resumed once the connection closed.
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let ending = Mutex(Ending())

    init(connection: WebSocketConnection, inbound: InboundMessages, pings: PendingPings) {
        self.connection = connection
        self.inbound = inbound
        self.pings = pings
        self.messages = Messages(inbound: inbound)
    }

    /// Sends a whole message. Waits while what is queued for the client
    /// reaches half of `SwiftWebSocketOutboxSize`, until the client has
    /// read it; throws `WebSocketError.closed` once the connection is
    /// closing.
    public func send(_ message: Message) async throws {
        await connection.waitForRoomToSend()
        try connection.send(message)
    }

    public func send(text: String) async throws {
        try await send(.text(text))
    }

    public func send(binary: [UInt8]) async throws {
        try await send(.binary(binary))
    }

    /// Sends one message in pieces as `body` produces them (see
    /// `MessageWriter`); it ends when `body` returns. If `body` throws, the
    /// unfinished message can only be followed by a close: the connection
    /// closes with 1011 and the error is rethrown. One at a time: a second
    /// writer while one is open throws
    /// `WebSocketError.fragmentedMessageInProgress`.
    ///
    /// ```swift
    /// try await socket.withMessageWriter(.text) { writer in
    ///     for try await line in lines { try await writer.write(text: line) }
    /// }
    /// ```
    public func withMessageWriter<Result>(_ kind: MessageWriter.Kind,
                                          _ body: (MessageWriter) async throws -> Result) async throws -> Result {
        guard isStreaming.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            throw WebSocketError.fragmentedMessageInProgress
        }
        defer { isStreaming.store(false, ordering: .releasing) }
        let writer = MessageWriter(kind: kind, connection: connection)
        let result: Result
        do {
            result = try await body(writer)
        } catch {
            writer.abandon(after: error)
            throw error
        }
        try writer.end()
        return result
    }

    /// Sends a ping and returns when the client's pong comes: the round
    /// trip, from when the ping was queued (behind what was queued before
    /// it). Throws `WebSocketError.closed` if the connection closes first.
    public func ping() async throws -> Duration {
        try await pings.ping(through: connection)
    }

    /// Starts the closing handshake after what was queued before it, and
    /// returns once the connection has closed (the client answered, or
    /// `SwiftWebSocketCloseTimeout` passed).
    public func close(code: CloseCode = .normalClosure, reason: String = "") async {
        connection.close(code: code, reason: reason)
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let waits = ending.withLock { ending in
                guard !ending.isClosed else { return false }
                ending.closeWaiters.append(waiter)
                return true
            }
            if !waits { waiter.resume() }
        }
    }

    /// The connection closed with the client's `code` (`.noStatusReceived`
    /// or `.abnormalClosure` when it sent none): `messages` ends after what
    /// came before, and `close` returns.
    func connectionClosed(code: CloseCode, reason: String) {
        inbound.finish()
        pings.connectionClosed()
        let waiters = ending.withLock { ending in
            ending.isClosed = true
            if code != .noStatusReceived && code != .abnormalClosure {
                ending.peerCloseCode = code
                ending.peerCloseReason = reason
            }
            defer { ending.closeWaiters = [] }
            return ending.closeWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The messages of one connection, in the order the client sent them.
    public struct Messages: AsyncSequence, Sendable {
        public typealias Element = Message
        let inbound: InboundMessages

        public struct AsyncIterator: AsyncIteratorProtocol {
            let inbound: InboundMessages

            /// The next message; nil once the connection closed. Throws
            /// `CancellationError` when the task is cancelled while it waits.
            public mutating func next() async throws -> Message? {
                try await inbound.next()
            }
        }

        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(inbound: inbound)
        }
    }
}

/// A member of a `WebSocketGroup`: a broadcast is queued at once, without
/// waiting; a client too far behind is closed with 1008 as any member is.
extension AsyncWebSocket: MessageRecipient, SharedMessageRecipient {
    public func send(_ message: Message) throws {
        try connection.send(message)
    }

    func send(_ shared: SharedMessage) throws {
        try connection.send(shared)
    }
}
