/// One connection's state under whichever driver runs it, Sans-I/O: the
/// protocol engine, the deadlines, what other threads queued (the outbox)
/// and what was taken from it and not yet written, the peer's close, and
/// whether the transport still carries bytes. A driver hands it bytes read,
/// the time, and the handler's sends and closes; the core decides, writes
/// frames through the driver's `write` (a header and its payload, never
/// copied together), and answers with values: the handler's next event,
/// what the outbox asks, the next deadline or that the transport is to be
/// dropped. The blocking loop (`WebSocket`) and the parked steps
/// (`ParkedConnection`) differ only in how they wait and when they call.
///
/// It sits above WebSocketProtocol, beside the outbox: the outbox is the
/// one part other threads touch (under a lock) and it is charged to the
/// child's memory budget, neither of which the protocol target knows.
struct ConnectionCore {
    typealias Write = ServerProtocol.Write

    /// What the handler is to be told of.
    enum Event: Equatable {
        case message(Message)
        /// A pong other than the keepalive's.
        case pong([UInt8])
        /// The peer's close frame came (`peerClose`); our reply is owed
        /// unless our close went first (`state` says which).
        case peerClosed
    }

    /// What the outbox asked of the connection at one call of `deliverQueued`.
    enum Queued: Equatable {
        /// Nothing (more) to write now.
        case nothing
        /// One item was written; there may be more.
        case delivered
        /// Close with this code: another thread asked, or the outbox
        /// overflowed (logged). The outbox is shut.
        case close(CloseCode, reason: String)
    }

    /// What the deadlines ask of the driver.
    enum AfterDeadlines: Equatable {
        /// Look again at this instant (nil: only input or a wake-up).
        case wait(until: MonotonicInstant?)
        /// The peer is gone or its time to close is up: whatever last frame
        /// could be written was; end the transport (`endTransport`).
        case drop
    }

    /// The peer's close frame.
    struct PeerClose: Equatable {
        /// nil when the frame carried no code.
        var code: CloseCode?
        var reason: String
    }

    private var engine: ServerProtocol
    private var deadlines: ConnectionDeadlines
    private let outbox: Outbox
    /// Items taken from the outbox and not yet written, newest first: a
    /// parked connection whose socket is full holds them, and takes nothing
    /// more until they are out, so the outbox's bound holds.
    private var undelivered: [Outbox.Entry] = []
    /// A streamed message from the outbox (`Outbox.Item.fragment`) is
    /// unfinished: only what goes between its fragments is written.
    private var streamingQueued = false
    /// The outbox refused a send after the items in `undelivered`: the
    /// connection closes once they are written.
    private var overflowAfterUndelivered: CloseCode?
    /// The stream ended or failed: no more reads or writes.
    private(set) var transportClosed = false
    private(set) var peerClose: PeerClose?
    private let log: (LogLevel, String) -> Void

    init(limits: Limits, keepalive: Keepalive, compression: PerMessageDeflate?, outbox: Outbox,
         memory: MemoryAccount?, meter: (any TrafficMeter)?, now: MonotonicInstant,
         log: @escaping (LogLevel, String) -> Void) {
        engine = ServerProtocol(limits: limits, compression: compression, memory: memory)
        engine.meter = meter
        deadlines = ConnectionDeadlines(keepalive, now: now)
        self.outbox = outbox
        self.log = log
    }

    var state: ServerProtocol.State { engine.state }
    /// Open both ways: messages may be sent.
    var isOpen: Bool { engine.state == .open && !transportClosed }
    /// Bytes are still read: after our close, to reach the peer's.
    var isReading: Bool { !transportClosed && (engine.state == .open || engine.state == .closeSent) }
    /// Nothing more will be read or written.
    var isFinished: Bool { transportClosed || engine.state == .closed }

    // MARK: Input

    /// Reads once through `read` (which does not wait): the count of bytes
    /// read, 0 when the stream ended, nil when nothing was there. The
    /// transport ends with the stream, or with an error, which is thrown.
    mutating func read(at now: MonotonicInstant,
                       _ read: () throws(WebSocketError) -> Int?) throws(WebSocketError) -> Int? {
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

    /// Parses `bytes`, all of them.
    mutating func receive(_ bytes: UnsafeRawBufferPointer) {
        engine.receive(bytes)
    }

    /// Parses a prefix of `bytes` until `work` (bytes read and inflated)
    /// runs out; returns the prefix's length.
    mutating func receive(_ bytes: UnsafeRawBufferPointer, work: inout Int) -> Int {
        engine.receive(bytes, work: &work)
    }

    /// The next event is the peer's close or a violation (`nextEvent` acts
    /// on it as it hands it out).
    var nextEventEndsInput: Bool { engine.nextEventEndsInput }

    /// How long a handler that answers later (`PacedInput`) is given to
    /// answer the messages before a close or a violation, before the close
    /// goes out: the client's messages are answered in the order it sent
    /// them, as a callback's are (Autobahn 4.1.3, 4.2.3, 5.15).
    static let catchUpBeforeClosing: Int64 = 100_000_000

    /// The next event for the handler, nil when more input is needed. Pings
    /// are answered and protocol violations closed (and logged) on the way.
    mutating func nextEvent(_ write: Write) throws -> Event? {
        while let event = engine.nextEvent() {
            switch event {
            case .message(let message):
                deadlines.messageReceived()
                return .message(message)
            case .ping:
                try writePendingOutput(write)
            case .pong(let payload):
                if payload != ConnectionDeadlines.keepalivePayload { return .pong(payload) }
            case .close(let code, let reason):
                peerClose = PeerClose(code: code, reason: reason)
                shutOutbox()
                return .peerClosed
            case .failed(let violation):
                log(violation.logLevel, "closing with \(violation.closeCode): \(violation)")
                shutOutbox()
                try? writePendingOutput(write)
            }
        }
        return nil
    }

    // MARK: Time

    /// Acts on what is due at `now` (the message timeout, a stopping
    /// server, the keepalive ping, the idle and closing timeouts) and says
    /// what the driver is to do next. Called on every pass, so a client
    /// that never stops sending still meets the idle and closing timeouts.
    mutating func actOnDeadlines(at now: MonotonicInstant, isStopping: Bool,
                                 _ write: Write) throws -> AfterDeadlines {
        _ = engine.checkMessage(now: now, timeout: deadlines.intervals.messageTimeout)  // its deadline: nextDeadline
        if isStopping && engine.state == .open {
            log(.info, "server stopping; closing with 1001")
            try close(code: .goingAway, reason: "server stopping", at: now, write)
        }
        let due = deadlines.due(at: now)
        switch due {
        case .none:
            break
        case .keepalivePing:
            _ = engine.ping(ConnectionDeadlines.keepalivePayload)
            try writePendingOutput(write)
            deadlines.keepalivePingSent(at: now)
        case .peerGone:
            log(.info, deadlines.logLine(for: due))
            _ = engine.close(code: .internalError, reason: "keepalive ping timeout")
            try? writePendingOutput(write)
            return .drop
        case .idle:
            log(.info, deadlines.logLine(for: due))
            try close(code: .goingAway, reason: "idle timeout", at: now, write)
        case .closeTimedOut:
            log(.info, deadlines.logLine(for: due))
            return .drop
        }
        return .wait(until: nextDeadline)
    }

    /// `actOnDeadlines` while the driver reads nothing because the handler
    /// is behind its input (`PacedInput`): the peer counts as heard, since
    /// what it sent waits unread on our side, a keepalive pong among it.
    mutating func actOnDeadlinesWhileInputHeld(at now: MonotonicInstant, isStopping: Bool,
                                               _ write: Write) throws -> AfterDeadlines {
        deadlines.heard(at: now)
        return try actOnDeadlines(at: now, isStopping: isStopping, write)
    }

    /// How often a driver holding input back looks whether the handler
    /// caught up.
    static let inputHeldPollMicroseconds: UInt32 = 1000

    /// The earliest deadline still to come, nil if none.
    var nextDeadline: MonotonicInstant? {
        deadlines.next(messageDue: engine.messageDeadline(timeout: deadlines.intervals.messageTimeout))
    }

    // MARK: Output

    /// Writes the control frames the engine queued (pongs, a close).
    mutating func writePendingOutput(_ write: Write) throws {
        guard !transportClosed else { return }
        try writing { engine in try engine.writePendingOutput(to: write) }
    }

    /// Sends a whole message.
    mutating func send(_ message: Message, _ write: Write) throws {
        try message.withPayload { payload in
            guard engine.fragmentedMessageOpcode == nil else { throw WebSocketError.fragmentedMessageInProgress }
            guard !transportClosed, let frame = engine.prepareMessage(opcode: message.opcode, payload: payload) else {
                throw WebSocketError.closed
            }
            try writeFrame(frame, payload, write)
        }
    }

    /// Sends a broadcast's message, framed (and compressed) once per child.
    mutating func send(_ shared: SharedMessage, _ write: Write) throws {
        guard engine.fragmentedMessageOpcode == nil else { throw WebSocketError.fragmentedMessageInProgress }
        guard !transportClosed else { throw WebSocketError.closed }
        noteMessageSent()
        guard try writing({ engine in try engine.writeShared(shared, to: write) }) else {
            throw WebSocketError.closed
        }
    }

    /// Sends the next piece of a message; it ends with `isFinal`.
    mutating func sendFragment(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, isFinal: Bool,
                               _ write: Write) throws {
        if let started = engine.fragmentedMessageOpcode, started != opcode {
            throw WebSocketError.fragmentedMessageInProgress
        }
        guard !transportClosed, let frame = engine.prepareFragment(opcode: opcode, payload: payload, isFinal: isFinal) else {
            try? writePendingOutput(write)  // the close a compression failure queued
            throw WebSocketError.closed
        }
        try writeFrame(frame, payload, write)
    }

    /// Sends a ping (payloads over 125 bytes are cut to 125).
    mutating func ping(_ payload: [UInt8], _ write: Write) throws {
        guard !transportClosed, engine.ping(payload) else { throw WebSocketError.closed }
        try writePendingOutput(write)
    }

    /// Writes the next item other threads (or callbacks) queued, or says
    /// the outbox wants the connection closed. `writable`: false while the
    /// socket still holds earlier output, when only an overflow is looked
    /// at (a client that does not read is closed all the same).
    mutating func deliverQueued(_ write: Write, writable: Bool = true) throws -> Queued {
        guard isOpen else { return .nothing }
        // Nothing goes between the fragments of the owner's own message
        // (`WebSocket.sendFragment`).
        guard engine.fragmentedMessageOpcode == nil || streamingQueued else { return .nothing }
        guard writable else {
            // A client that stopped reading is closed now: what was
            // queued for it could not be written anyway.
            if let code = outbox.overflow ?? overflowAfterUndelivered { return overflowed(code) }
            return .nothing
        }
        guard let entry = nextUndelivered() else {
            if let code = overflowAfterUndelivered { return overflowed(code) }
            return .nothing
        }
        switch entry.item {
        case .message(let message):
            try send(message, write)
        case .shared(let shared):
            try send(shared, write)
        case .fragment(let opcode, let payload, let isFinal):
            try payload.withUnsafeBytes { bytes in try sendFragment(opcode, bytes, isFinal: isFinal, write) }
            streamingQueued = !isFinal
            if isFinal && !undelivered.isEmpty { takeOverlapped() }
        case .ping(let payload):
            try ping(payload, write)
        case .close(let code, let reason):
            shutOutbox()
            return .close(code, reason: reason)
        }
        return .delivered
    }

    /// The oldest item to write, taken from the outbox when none was held;
    /// while a streamed message is unfinished, the oldest that may go
    /// between its fragments (what the outbox has of them is taken when
    /// none is held), the others waiting for its end.
    private mutating func nextUndelivered() -> Outbox.Entry? {
        let goesNow: (Outbox.Entry) -> Bool = { [streamingQueued] in !streamingQueued || $0.item.goesBetweenFragments }
        if overflowAfterUndelivered == nil && !undelivered.contains(where: goesNow) {
            let taken = streamingQueued ? outbox.takeBetweenFragments() : outbox.takeAll()
            // All newer than what is held.
            undelivered = taken.entries.reversed() + undelivered
            overflowAfterUndelivered = taken.overflow
        }
        guard let index = undelivered.lastIndex(where: goesNow) else { return nil }
        return index == undelivered.count - 1 ? undelivered.popLast() : undelivered.remove(at: index)
    }

    /// A streamed message ended with items held that its pieces overtook,
    /// and the outbox may hold older ones than some of those: all of them
    /// in the order they were queued.
    private mutating func takeOverlapped() {
        guard overflowAfterUndelivered == nil else { return }
        let taken = outbox.takeAll()
        undelivered = (undelivered + taken.entries).sorted { $0.sequence > $1.sequence }
        overflowAfterUndelivered = taken.overflow
    }

    /// A send was refused: past the outbox's bound (1008) or the memory
    /// budget's (1013). What was accepted before it was written first
    /// while the socket took it; the rest is dropped.
    private mutating func overflowed(_ code: CloseCode) -> Queued {
        shutOutbox()
        if code == .policyViolation {
            log(.info, "more than \(outbox.limit) bytes queued for a slow client; closing with 1008")
            return .close(code, reason: "too slow")
        }
        engine.meter?.closedOverMemoryBudget()
        return .close(code, reason: "memory budget")
    }

    /// Sends our close frame, or after the peer's the reply, unless one went
    /// out already; a close that opens the handshake starts the close
    /// timeout. Nothing is queued from now on. A code that may not be sent
    /// is logged and sent as 1000.
    mutating func close(code: CloseCode?, reason: String, at now: MonotonicInstant, _ write: Write) throws {
        shutOutbox()
        guard !transportClosed else { return }
        var code = code
        if let chosen = code, !chosen.isValidOnWire {
            log(.error, "close code \(chosen) may not be sent; closing with 1000")
            code = .normalClosure
        }
        let opensHandshake = engine.state == .open
        guard engine.close(code: code, reason: reason) else { return }
        if opensHandshake { deadlines.closeSent(at: now) }
        try writePendingOutput(write)
    }

    /// Refuses every later send and drops what waits to be written.
    mutating func shutOutbox() {
        outbox.close()
        undelivered = []
        overflowAfterUndelivered = nil
        streamingQueued = false
    }

    // MARK: Transport

    /// The stream ended or failed, or is being dropped: no more reads or
    /// writes.
    mutating func endTransport() {
        transportClosed = true
        shutOutbox()
        engine.connectionLost()
    }

    private mutating func writeFrame(_ frame: ServerProtocol.OutgoingFrame, _ payload: UnsafeRawBufferPointer,
                                     _ write: Write) throws {
        noteMessageSent()
        try writing { engine in try engine.writeFrame(frame, payload, to: write) }
    }

    /// The idle timeout counts messages sent too. The core's one clock
    /// read, and only with an idle timeout: the drivers do not read the
    /// clock per send.
    private mutating func noteMessageSent() {
        if deadlines.watchesSentMessages { deadlines.messageSent(at: .now) }
    }

    /// Runs one of the engine's writes; a failed write ends the transport,
    /// once the engine is let go.
    private mutating func writing<Result>(_ body: (inout ServerProtocol) throws -> Result) throws -> Result {
        do {
            return try body(&engine)
        } catch {
            endTransport()
            throw error
        }
    }
}
