/// What the blocking loop (`WebSocket`) and the parked steps
/// (`ParkedConnection`) have in common: an engine, a clock of deadlines and
/// a way to write. The deadlines are acted on here, once, for both; a
/// driver differs only in how it waits and how it writes.
protocol ConnectionDriver: AnyObject {
    var engine: ServerProtocol { get set }
    var deadlines: ConnectionDeadlines { get set }
    var isStopping: Bool { get }
    func log(_ level: LogLevel, _ message: String)
    /// Writes the control frames the engine queued.
    func writePendingOutput() throws
    /// Sends our close frame, if none went out yet, and starts its timer.
    func startClose(code: CloseCode?, reason: String) throws
    /// Writes what it can of a last close frame without waiting, and ends
    /// the transport: the peer is gone or its time is up.
    func dropTransport()
    /// The stream ended or failed: no more reads or writes.
    func endTransport()
    /// Writes a message another thread (or a callback) queued.
    func deliver(_ message: Message) throws
    func deliver(_ shared: SharedMessage) throws
    /// Closes as another thread asked.
    func deliverClose(code: CloseCode, reason: String) throws
}

extension ConnectionDriver {
    /// Writes one item taken from the outbox; false once it was a close,
    /// after which nothing more is written.
    func deliver(_ item: Outbox.Item) throws -> Bool {
        switch item {
        case .message(let message): try deliver(message)
        case .shared(let shared): try deliver(shared)
        case .close(let code, let reason):
            try deliverClose(code: code, reason: reason)
            return false
        }
        return true
    }

    /// Reads once without waiting through `read`: the count of bytes read
    /// (the deadlines are told), 0 when the stream ended, nil when nothing
    /// was there. The transport ends with the stream, or with an error,
    /// which is thrown.
    func readOnce(at now: MonotonicInstant, _ read: () throws(WebSocketError) -> Int?) throws(WebSocketError) -> Int? {
        let count: Int?
        do {
            count = try read()
        } catch {
            endTransport()
            throw error
        }
        if let count {
            if count > 0 { deadlines.heard(at: now) } else { endTransport() }
        }
        return count
    }

    /// Acts on what is due at `now` (the message timeout, a stopping
    /// server, the keepalive, idle and closing deadlines) and returns the
    /// next deadline (nil: none, wait for input alone).
    func actOnDeadlines(now: MonotonicInstant) throws -> MonotonicInstant? {
        let messageDue = engine.checkMessage(now: now, timeout: deadlines.intervals.messageTimeout)
        if isStopping && engine.state == .open {
            log(.info, "server stopping; closing with 1001")
            try startClose(code: .goingAway, reason: "server stopping")
        }
        let due = deadlines.due(at: now)
        switch due {
        case .none:
            break
        case .keepalivePing:
            _ = engine.ping(ConnectionDeadlines.keepalivePayload)
            try writePendingOutput()
            deadlines.keepalivePingSent(at: now)
        case .peerGone:
            log(.info, deadlines.logLine(for: due))
            _ = engine.close(code: .internalError, reason: "keepalive ping timeout")
            dropTransport()
        case .idle:
            log(.info, deadlines.logLine(for: due))
            try startClose(code: .goingAway, reason: "idle timeout")
        case .closeTimedOut:
            log(.info, deadlines.logLine(for: due))
            dropTransport()
        }
        return deadlines.next(messageDue: messageDue)
    }
}
