/// One accepted WebSocket connection. The thread running the handler's
/// `transferData` owns it: `receive()` waits there for the next message,
/// answering pings, pinging a quiet peer and delivering what other threads
/// sent meanwhile.
///
/// Threads: `send(text:)`, `send(binary:)`, `send(_:)`, `close(code:reason:)`
/// and `isOpen` may be used from any thread (a chat handler sends to every
/// member of its room); from another thread a send is queued and the owner
/// writes it (httpd's filters are not thread-safe). Everything else belongs
/// to the owner and throws `WebSocketError.wrongThread` elsewhere.
public final class WebSocket: ConnectionDriver, @unchecked Sendable {
    /// The upgrade request this connection was accepted from.
    public let request: UpgradeRequest
    /// The subprotocol agreed in the handshake, if any.
    public let subprotocol: String?
    /// The code of the close frame the peer sent (nil if none yet, or if it
    /// sent none).
    public private(set) var peerCloseCode: CloseCode?
    public private(set) var peerCloseReason = ""
    /// Whether the peer's close frame arrived (`peerCloseCode` is nil also
    /// when it carried no code).
    package private(set) var receivedCloseFrame = false
    /// Called inside `receive()` with the payload of each pong that answers
    /// a `ping(_:)` (or arrives unasked); keepalive pongs are not reported.
    public var onPong: (([UInt8]) -> Void)?

    /// Logs to Apache's error log against this connection's request.
    public var logger: Logger { request.logger }

    /// permessage-deflate as agreed in the handshake, or nil.
    public let compression: PerMessageDeflate?

    /// Whether messages can still be sent. Any thread.
    public var isOpen: Bool { outbox.isOpen }

    var engine: ServerProtocol
    var deadlines: ConnectionDeadlines
    private let io: any ConnectionIO
    private let outbox: Outbox
    private let readBuffer: UnsafeMutableRawBufferPointer
    private let memory = MemoryBudget.shared.openAccount()
    /// Set when the stream ended or failed: no more reads or writes.
    private var transportClosed = false
    /// For SwiftWebSocketSlowCallback: since when the handler has had the
    /// thread (it returned from `receive()`, or started), while it has.
    private let slowCalls: SlowCallWatch
    private var handlerCodeSince: MonotonicInstant?

    /// Reads of at most one TLS record: larger buffers only cost memory.
    /// The shim asks its filters for the same (READ_SIZE, connection_io.c).
    static let readBufferSize = 16 * 1024

    package init(request: UpgradeRequest, subprotocol: String?, limits: Limits, keepalive: Keepalive = Keepalive(),
                 compression: PerMessageDeflate? = nil, slowCalls: SlowCallWatch = SlowCallWatch(),
                 io: any ConnectionIO, meter: (any TrafficMeter)? = nil) {
        self.request = request
        self.subprotocol = subprotocol
        self.engine = ServerProtocol(limits: limits, compression: compression, memory: memory)
        self.engine.meter = meter
        self.compression = compression
        self.io = io
        self.outbox = Outbox(limit: limits.maxQueuedBytes, memory: memory)
        self.deadlines = ConnectionDeadlines(keepalive, now: .now)
        self.readBuffer = .allocate(byteCount: Self.readBufferSize, alignment: 8)
        self.slowCalls = slowCalls
        // The budget took its memory back: the owner wakes and closes it.
        memory.onRevoke { [io] in io.wake() }
    }

    deinit {
        readBuffer.deallocate()
    }

    // MARK: Receiving (owner)

    /// The next message, or nil once the connection is closing or closed:
    /// by a close frame from the peer (`peerCloseCode` says which; the reply
    /// goes out when `transferData` returns, or at once with
    /// `close(code:reason:)`), a protocol violation, the stream ending, a
    /// peer that stopped answering pings, or the idle timeout.
    public func receive() throws -> Message? {
        try io.checkAccess()
        if let since = handlerCodeSince { slowCalls.check(since: since, "transferData", log: io.log) }
        defer { if slowCalls.isOn { handlerCodeSince = .now } }
        while true {
            while let event = engine.nextEvent() {
                if let message = try handle(event) { return message }
            }
            // After our close, keep reading to reach the peer's.
            guard engine.state == .open || engine.state == .closeSent, !transportClosed else { return nil }
            if engine.state == .open { try deliverQueued() }
            try readOrWait()
        }
    }

    /// Acts on one engine event; returns it if it is a message.
    private func handle(_ event: ServerProtocol.Event) throws -> Message? {
        switch event {
        case .message(let message):
            deadlines.messageReceived()
            return message
        case .ping:
            try writePendingOutput()
        case .pong(let payload):
            if payload != ConnectionDeadlines.keepalivePayload { onPong?(payload) }
        case .close(let code, let reason):
            peerCloseCode = code
            peerCloseReason = reason
            receivedCloseFrame = true
            outbox.close()
        case .failed(let violation):
            io.log(violation.logLevel, "closing with \(violation.closeCode): \(violation)")
            outbox.close()
            try? writePendingOutput()
        }
        return nil
    }

    /// Acts on passed deadlines, then reads what has arrived; if nothing
    /// has, waits for input, a wake-up from another thread, or the next
    /// deadline. Deadlines are looked at on every pass, so a client that
    /// never stops sending still meets the idle and closing timeouts.
    private func readOrWait() throws {
        // One clock read per pass: the read that follows does not wait.
        let now = MonotonicInstant.now
        let deadline = try actOnDeadlines(now: now)
        guard !transportClosed, try !readAvailable(at: now) else { return }
        guard let deadline else {
            try io.wait(timeout: nil)
            return
        }
        if deadline > now { try io.wait(timeout: deadline - now) }
    }

    /// Reads once without waiting and feeds the engine. True if bytes came
    /// or the stream ended, false if nothing was there.
    private func readAvailable(at now: MonotonicInstant) throws -> Bool {
        guard let count = try readOnce(at: now, { () throws(WebSocketError) in try io.read(into: readBuffer) }) else {
            return false
        }
        guard count > 0 else { return true }
        engine.receive(UnsafeRawBufferPointer(rebasing: readBuffer[0..<count]))
        return true
    }

    // MARK: Sending

    /// Sends a whole message. Any thread: from another thread than the
    /// owner's it is queued, and throws only if the connection is closed or
    /// too far behind (`WebSocketError.peerTooSlow`).
    public func send(_ message: Message) throws {
        guard try isOwner(orQueue: .message(message)) else { return }
        try deliverQueued()
        try deliver(message)
    }

    /// A broadcast's message: the same from any thread as `send(_:)`.
    package func send(_ shared: SharedMessage) throws {
        guard try isOwner(orQueue: .shared(shared)) else { return }
        try deliverQueued()
        try deliver(shared)
    }

    public func send(text: String) throws {
        try send(.text(text))
    }

    public func send(binary: [UInt8]) throws {
        try send(.binary(binary))
    }

    /// Sends the next piece of a text message as it is produced; the
    /// message ends with the piece sent with `isFinal: true`. Owner only;
    /// no other message may be sent until then. Each piece must be whole
    /// characters (a `String` always is).
    public func sendFragment(text: String, isFinal: Bool) throws {
        try io.checkAccess()
        var text = text
        try text.withUTF8 { bytes in try sendFragment(.text, UnsafeRawBufferPointer(bytes), isFinal: isFinal) }
    }

    /// Sends the next piece of a binary message; see `sendFragment(text:isFinal:)`.
    public func sendFragment(binary: [UInt8], isFinal: Bool) throws {
        try io.checkAccess()
        try binary.withUnsafeBytes { bytes in try sendFragment(.binary, bytes, isFinal: isFinal) }
    }

    /// Sends a ping; its pong is reported to `onPong` from inside
    /// `receive()`. Payloads over 125 bytes are cut to 125. Owner only.
    public func ping(_ payload: [UInt8] = []) throws {
        try io.checkAccess()
        guard !transportClosed, engine.ping(payload) else { throw WebSocketError.closed }
        try writePendingOutput()
    }

    /// Closes the connection: sends a close frame and waits (at most
    /// `Keepalive.closeTimeout`) for the peer's, discarding messages that
    /// arrive meanwhile. After the peer's close (`receive()` returned nil),
    /// this is the reply, with the code given. Does nothing if already
    /// closed. From another thread the close is queued for the owner.
    public func close(code: CloseCode = .normalClosure, reason: String = "") throws {
        guard try isOwner(orQueue: .close(code, reason: reason)) else { return }
        try closeAsOwner(code: code, reason: reason)
    }

    /// After the handler returned: whether the peer's close frame arrived
    /// and ours is still owed. Input that came while the handler was not
    /// receiving is taken first (without waiting), so a close the client
    /// sent meanwhile is answered as a reply, with its code, instead of
    /// crossing a close of our own. Messages among it are dropped: the
    /// handler is done.
    package func owesCloseReplyAfterHandler() -> Bool {
        takeEventsWhileOpen()
        if engine.state == .open && !transportClosed {
            _ = try? readAvailable(at: .now)
            takeEventsWhileOpen()
        }
        return engine.state == .closeReceived && !transportClosed
    }

    /// Runs the handler's transferData, its steps between `receive()` calls
    /// watched for SwiftWebSocketSlowCallback: the first until it receives,
    /// the last until it returns.
    package func runHandlerCode(_ transferData: () throws -> Void) rethrows {
        if slowCalls.isOn { handlerCodeSince = .now }
        defer {
            if let since = handlerCodeSince { slowCalls.check(since: since, "transferData", log: io.log) }
            handlerCodeSince = nil
        }
        try transferData()
    }

    /// Ends the connection after the handler returned or threw: a close
    /// frame with `code` (the reply, if the peer closed first; nil sends an
    /// empty one) unless one went out already.
    package func finish(code: CloseCode?, reason: String = "") {
        outbox.close()
        // The handler's closure may hold the socket: break the cycle.
        onPong = nil
        try? closeAsOwner(code: code, reason: reason)
    }

    private func takeEventsWhileOpen() {
        while engine.state == .open, let event = engine.nextEvent() { _ = try? handle(event) }
    }

    /// True on the owner's thread; elsewhere queues `item` for the owner,
    /// wakes it, and returns false.
    private func isOwner(orQueue item: Outbox.Item) throws -> Bool {
        do {
            try io.checkAccess()
            return true
        } catch .wrongThread {
            do {
                if try outbox.enqueue(item) { io.wake() }
            } catch .peerTooSlow {
                io.wake()  // the owner closes it
                throw WebSocketError.peerTooSlow
            }
            return false
        }
    }

    /// Writes what other threads queued, in order, and closes a connection
    /// whose queue overflowed.
    private func deliverQueued() throws {
        // Frames of another message cannot go between a message's fragments.
        guard engine.fragmentedMessageOpcode == nil else { return }
        let (items, overflow) = outbox.takeAll()
        for item in items {
            guard try deliver(item) else { return }
        }
        if overflow == .policyViolation {
            io.log(.info, "more than \(outbox.limit) bytes queued for a slow client; closing with 1008")
            try closeAsOwner(code: .policyViolation, reason: "too slow")
        } else if let overflow {
            engine.meter?.closedOverMemoryBudget()
            try closeAsOwner(code: overflow, reason: "memory budget")
        }
    }

    func deliver(_ message: Message) throws {
        try message.withPayload { payload in try sendMessage(message.opcode, payload) }
    }

    func deliver(_ shared: SharedMessage) throws {
        guard engine.fragmentedMessageOpcode == nil else { throw WebSocketError.fragmentedMessageInProgress }
        guard !transportClosed else { throw WebSocketError.closed }
        if deadlines.watchesSentMessages { deadlines.messageSent(at: .now) }
        guard try writing({ engine, write in try engine.writeShared(shared, to: write) }) else {
            throw WebSocketError.closed
        }
    }

    private func sendMessage(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer) throws {
        guard engine.fragmentedMessageOpcode == nil else { throw WebSocketError.fragmentedMessageInProgress }
        guard !transportClosed, let frame = engine.prepareMessage(opcode: opcode, payload: payload) else {
            throw WebSocketError.closed
        }
        try writeFrame(frame, payload)
    }

    private func sendFragment(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, isFinal: Bool) throws {
        if let started = engine.fragmentedMessageOpcode, started != opcode {
            throw WebSocketError.fragmentedMessageInProgress
        }
        guard !transportClosed, let frame = engine.prepareFragment(opcode: opcode, payload: payload, isFinal: isFinal) else {
            try? writePendingOutput()  // the close a compression failure queued
            throw WebSocketError.closed
        }
        try writeFrame(frame, payload)
    }

    private func writeFrame(_ frame: ServerProtocol.OutgoingFrame, _ payload: UnsafeRawBufferPointer) throws {
        if deadlines.watchesSentMessages { deadlines.messageSent(at: .now) }
        try writing { engine, write in try engine.writeFrame(frame, payload, to: write) }
    }

    // MARK: Closing (owner)

    func deliverClose(code: CloseCode, reason: String) throws {
        try closeAsOwner(code: code, reason: reason)
    }

    private func closeAsOwner(code: CloseCode?, reason: String) throws {
        guard !transportClosed else { return }
        var code = code
        if let chosen = code, !chosen.isValidOnWire {
            io.log(.error, "close code \(chosen) may not be sent; closing with 1000")
            code = .normalClosure
        }
        if engine.state == .closeReceived {
            engine.close(code: code, reason: reason)
            try writePendingOutput()
            return
        }
        try startClose(code: code, reason: reason)
        while engine.state == .closeSent && !transportClosed {
            while let event = engine.nextEvent() { _ = try handle(event) }
            if engine.state == .closeSent && !transportClosed { try readOrWait() }
        }
    }

    /// Sends our close frame, if none went out yet.
    func startClose(code: CloseCode?, reason: String) throws {
        outbox.close()
        guard engine.close(code: code, reason: reason) else { return }
        deadlines.closeSent(at: .now)
        try writePendingOutput()
    }

    // MARK: Transport

    func endTransport() {
        transportClosed = true
        outbox.close()
        engine.connectionLost()
    }

    func dropTransport() {
        try? writePendingOutput()
        endTransport()
    }

    func writePendingOutput() throws {
        guard !transportClosed else { return }
        try writing { engine, write in try engine.writePendingOutput(to: write) }
    }

    /// Runs one of the engine's writes through the connection's stream;
    /// a failed write ends the transport, once the engine is let go.
    private func writing<Result>(_ body: (inout ServerProtocol, ServerProtocol.Write) throws -> Result) throws -> Result {
        do {
            return try body(&engine) { first, second in try io.write(first, second) }
        } catch {
            endTransport()
            throw error
        }
    }

    var isStopping: Bool { io.isStopping }

    func log(_ level: LogLevel, _ message: String) {
        io.log(level, message)
    }
}
