#if canImport(Glibc)
import Glibc
#endif

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
public final class WebSocket: @unchecked Sendable {
    /// The upgrade request this connection was accepted from.
    public let request: UpgradeRequest
    /// The subprotocol agreed in the handshake, if any.
    public let subprotocol: String?
    /// The code of the close frame the peer sent (nil if none yet, or if it
    /// sent none).
    public var peerCloseCode: CloseCode? { core.peerClose?.code }
    public var peerCloseReason: String { core.peerClose?.reason ?? "" }
    /// Whether the peer's close frame arrived (`peerCloseCode` is nil also
    /// when it carried no code).
    package var receivedCloseFrame: Bool { core.peerClose != nil }
    /// Called inside `receive()` with the payload of each pong that answers
    /// a `ping(_:)` (or arrives unasked); keepalive pongs are not reported.
    public var onPong: (([UInt8]) -> Void)?

    /// For a handler that answers later (`PacedInput`): whether it has
    /// answered every message. A close or violation that comes next waits
    /// for it (up to `ConnectionCore.catchUpBeforeClosing`).
    package var handlerIsCaughtUp: (() -> Bool)?

    /// Logs to Apache's error log against this connection's request.
    public var logger: Logger { request.logger }

    /// permessage-deflate as agreed in the handshake, or nil.
    public let compression: PerMessageDeflate?

    /// Whether messages can still be sent. Any thread.
    public var isOpen: Bool { outbox.isOpen }

    package func waitForRoomToSend() async {
        await outbox.waitForRoomToSend()
    }

    package func waitForRoomToStream() async {
        await outbox.waitForRoomToStream()
    }

    /// Queues `item` even on the owner's thread: what only the outbox
    /// carries, written as the owner delivers what is queued.
    package func queue(_ item: Outbox.Item) throws {
        do {
            if try outbox.enqueue(item) { io.wake() }
        } catch .peerTooSlow {
            io.wake()  // the owner closes it
            throw WebSocketError.peerTooSlow
        }
    }

    private var core: ConnectionCore
    private let io: any ConnectionIO
    /// The core's outbox, which other threads fill (the core itself is the
    /// owner's alone).
    private let outbox: Outbox
    private let readBuffer: UnsafeMutableRawBufferPointer
    /// For SwiftWebSocketSlowCallback: since when the handler has had the
    /// thread (it returned from `receive()`, or started), while it has.
    private let slowCalls: SlowCallWatch
    private var handlerCodeSince: MonotonicInstant?
    /// The core's writes go to the connection's stream, flushed.
    private let write: ConnectionCore.Write

    /// Reads of at most one TLS record: larger buffers only cost memory.
    /// The shim asks its filters for the same (READ_SIZE, connection_io.c).
    static let readBufferSize = 16 * 1024

    package init(request: UpgradeRequest, subprotocol: String?, limits: Limits, keepalive: Keepalive = Keepalive(),
                 compression: PerMessageDeflate? = nil, slowCalls: SlowCallWatch = SlowCallWatch(),
                 io: any ConnectionIO, meter: (any TrafficMeter)? = nil) {
        let memory = MemoryBudget.shared.openAccount()
        self.request = request
        self.subprotocol = subprotocol
        self.compression = compression
        self.io = io
        let outbox = Outbox(limit: limits.maxQueuedBytes, memory: memory)
        self.outbox = outbox
        self.core = ConnectionCore(limits: limits, keepalive: keepalive, compression: compression, outbox: outbox,
                                   memory: memory, meter: meter, now: .now) { [io] level, message in
            io.log(level, message)
        }
        self.readBuffer = .allocate(byteCount: Self.readBufferSize, alignment: 8)
        self.slowCalls = slowCalls
        self.write = { [io] first, second in try io.write(first, second) }
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
            while true {
                if let handlerIsCaughtUp, core.nextEventEndsInput {
                    try holdInput(until: handlerIsCaughtUp, atMost: ConnectionCore.catchUpBeforeClosing)
                }
                guard let event = try core.nextEvent(write) else { break }
                if let message = handle(event) { return message }
            }
            // After our close, keep reading to reach the peer's.
            guard core.isReading else { return nil }
            if core.isOpen { try deliverQueued() }
            try readOrWait()
        }
    }

    /// Reads nothing until `ready` says so (an async handler behind its
    /// input, `PacedInput`) or `atMost` nanoseconds passed, writing what
    /// other threads send and meeting the deadlines meanwhile. Owner only.
    package func holdInput(until ready: () -> Bool, atMost limit: Int64? = nil) throws {
        try io.checkAccess()
        let deadline = limit.map { MonotonicInstant.now.advanced(by: $0) }
        while !ready() && core.isOpen {
            if let deadline, MonotonicInstant.now >= deadline { break }
            try deliverQueued()
            if try core.actOnDeadlinesWhileInputHeld(at: .now, isStopping: io.isStopping, write) == .drop {
                core.endTransport()
                return
            }
            usleep(ConnectionCore.inputHeldPollMicroseconds)
        }
        if core.isOpen { try deliverQueued() }
    }

    /// Acts on one of the core's events; returns it if it is a message.
    private func handle(_ event: ConnectionCore.Event) -> Message? {
        switch event {
        case .message(let message): return message
        case .pong(let payload): onPong?(payload)
        case .peerClosed: break
        }
        return nil
    }

    /// Acts on passed deadlines, then reads what has arrived; if nothing
    /// has, waits for input, a wake-up from another thread, or the next
    /// deadline.
    private func readOrWait() throws {
        // One clock read per pass: the read that follows does not wait.
        let now = MonotonicInstant.now
        let deadline: MonotonicInstant?
        switch try core.actOnDeadlines(at: now, isStopping: io.isStopping, write) {
        case .drop:
            core.endTransport()
            return
        case .wait(let until):
            deadline = until
        }
        guard !core.transportClosed, try !readAvailable(at: now) else { return }
        guard let deadline else {
            try io.wait(timeout: nil)
            return
        }
        if deadline > now { try io.wait(timeout: deadline - now) }
    }

    /// Reads once without waiting and feeds the core. True if bytes came
    /// or the stream ended, false if nothing was there.
    private func readAvailable(at now: MonotonicInstant) throws -> Bool {
        guard let count = try core.read(at: now, { () throws(WebSocketError) in try io.read(into: readBuffer) }) else {
            return false
        }
        guard count > 0 else { return true }
        core.receive(UnsafeRawBufferPointer(rebasing: readBuffer[0..<count]))
        return true
    }

    // MARK: Sending

    /// Sends a whole message. Any thread: from another thread than the
    /// owner's it is queued, and throws only if the connection is closed or
    /// too far behind (`WebSocketError.peerTooSlow`).
    public func send(_ message: Message) throws {
        guard try isOwner(orQueue: .message(message)) else { return }
        try deliverQueued()
        try core.send(message, write)
    }

    /// A broadcast's message: the same from any thread as `send(_:)`.
    package func send(_ shared: SharedMessage) throws {
        guard try isOwner(orQueue: .shared(shared)) else { return }
        try deliverQueued()
        try core.send(shared, write)
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
        try text.withUTF8 { bytes in try core.sendFragment(.text, UnsafeRawBufferPointer(bytes), isFinal: isFinal, write) }
    }

    /// Sends the next piece of a binary message; see `sendFragment(text:isFinal:)`.
    public func sendFragment(binary: [UInt8], isFinal: Bool) throws {
        try io.checkAccess()
        try binary.withUnsafeBytes { bytes in try core.sendFragment(.binary, bytes, isFinal: isFinal, write) }
    }

    /// Sends a ping; its pong is reported to `onPong` from inside
    /// `receive()`. Payloads over 125 bytes are cut to 125. Owner only.
    public func ping(_ payload: [UInt8] = []) throws {
        try io.checkAccess()
        try core.ping(payload, write)
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
        if core.isOpen {
            _ = try? readAvailable(at: .now)
            takeEventsWhileOpen()
        }
        return core.state == .closeReceived && !core.transportClosed
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
        core.shutOutbox()
        // The handler's closures may hold the socket: break the cycle.
        onPong = nil
        handlerIsCaughtUp = nil
        try? closeAsOwner(code: code, reason: reason)
    }

    private func takeEventsWhileOpen() {
        while core.state == .open, let event = try? core.nextEvent(write) { _ = handle(event) }
    }

    /// True on the owner's thread; elsewhere queues `item` for the owner,
    /// wakes it, and returns false.
    private func isOwner(orQueue item: Outbox.Item) throws -> Bool {
        do {
            try io.checkAccess()
            return true
        } catch .wrongThread {
            try queue(item)
            return false
        }
    }

    /// Writes what other threads queued, in order, and closes as the
    /// outbox asks.
    private func deliverQueued() throws {
        while true {
            switch try core.deliverQueued(write) {
            case .nothing: return
            case .delivered: continue
            case .close(let code, let reason):
                try closeAsOwner(code: code, reason: reason)
                return
            }
        }
    }

    // MARK: Closing (owner)

    /// Sends the close (or the reply) and, having opened the handshake,
    /// reads until the peer's close frame or the close timeout.
    private func closeAsOwner(code: CloseCode?, reason: String) throws {
        try core.close(code: code, reason: reason, at: .now, write)
        while core.state == .closeSent && !core.transportClosed {
            while let event = try core.nextEvent(write) { _ = handle(event) }
            if core.state == .closeSent && !core.transportClosed { try readOrWait() }
        }
    }
}
