#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A `WebSocketEventHandler`'s connection on httpd's event MPM: driven in
/// short steps by whichever thread has it, and otherwise parked in the MPM
/// with no thread at all.
///
/// - The content handler opens it (`open`), the MPM's `process_connection`
///   hook re-enters it when the socket is readable, or writable while
///   output is pending (`resume`). Each step reads until nothing is left
///   (mod_ssl may hold decrypted bytes that poll cannot see), runs the
///   handler's callbacks, writes what they and other threads queued, and
///   tells the MPM what to wait for.
/// - Keepalive pings, timeouts and other threads' messages arrive as MPM
///   timers (`timerFired`), which take the parked connection for a moment
///   to write; they never read, so the MPM's poll stays the one reader.
/// - httpd's `Timeout` expiring in the MPM ends it with 1001 (`abandon`).
package final class ParkedConnection: @unchecked Sendable {
    /// What the MPM should wait for before resuming the connection.
    package enum Next: Equatable {
        case input, output, closed
    }

    package let connection: WebSocketConnection
    private var handler: any WebSocketEventHandler
    /// The handler's bounded input queue, if it has one (async handlers).
    private let pacing: (any PacedInput)?
    private let handlerName: String
    private var core: ConnectionCore
    private let io: any ParkedConnectionIO
    private let transport: ParkedTransport
    /// Where an async handler's task runs (`ConnectionExecutor`).
    private let handlerJobs: ConnectionExecutor?
    private let gate = DriverGate()
    private let readBuffer: UnsafeMutableRawBufferPointer
    private let slowCalls: SlowCallWatch
    /// The core's writes go to the output filters, which keep what the
    /// socket does not take at once (`flush` writes it).
    private let write: ConnectionCore.Write

    /// The filters hold output the socket did not take yet.
    private var outputPending = false
    /// What was read into `readBuffer` and not parsed when a turn ended.
    private var unparsed = 0..<0
    private var finished = false

    /// The earliest timer scheduled and not yet fired.
    private var timerDue: MonotonicInstant?
    /// Until when a close waits for the handler's answers (`closeAwaitsHandler`).
    private var catchUpDeadline: MonotonicInstant?

    /// A timer step that could not write everything tries again this soon:
    /// the MPM polls for writability only when it resumed the connection.
    static let outputRetry: Int64 = 50_000_000
    /// The most a step reads and inflates before it lets other connections
    /// have the worker: 16 reads (an inflated slice may go past it by about
    /// a MiB, MessageExtension.decodeSlice).
    static let workTurn = 16 * WebSocket.readBufferSize
    /// The most batches of an async handler's jobs one delivery runs.
    static let handlerJobBatches = 64

    package init(handler: any WebSocketEventHandler, handlerName: String, request: UpgradeRequest,
                 subprotocol: String?, limits: Limits, keepalive: Keepalive, compression: PerMessageDeflate?,
                 slowCalls: SlowCallWatch = SlowCallWatch(), io: any ParkedConnectionIO,
                 meter: (any TrafficMeter)? = nil) {
        let memory = MemoryBudget.shared.openAccount()
        let outbox = Outbox(limit: limits.maxQueuedBytes, memory: memory)
        self.handler = handler
        let pacing = handler as? any PacedInput
        self.pacing = pacing
        self.handlerName = handlerName
        self.core = ConnectionCore(limits: limits, keepalive: keepalive, compression: compression, outbox: outbox,
                                   memory: memory, meter: meter, now: .now) { [io] level, message in
            io.log(level, message)
        }
        self.io = io
        let transport = ParkedTransport(outbox: outbox, io: io)
        self.transport = transport
        // An async handler's task runs in this connection's steps.
        let handlerJobs = pacing == nil ? nil : ConnectionExecutor { transport.wakeUnlessDriving() }
        self.handlerJobs = handlerJobs
        self.connection = WebSocketConnection(request: request, subprotocol: subprotocol, transport: transport,
                                              closeTimeout: keepalive.closeTimeout, handlerExecutor: handlerJobs)
        self.readBuffer = .allocate(byteCount: WebSocket.readBufferSize, alignment: 8)
        self.slowCalls = slowCalls
        self.write = { [io] first, second in try io.write(first, second) }
        // The budget took its memory back: a timer step closes it.
        memory.onRevoke { [io] in io.scheduleTimer(after: .zero) }
    }

    deinit {
        readBuffer.deallocate()
    }

    // MARK: Entry points

    /// In the content handler, after the 101: `onOpen`, then whatever the
    /// client sent with its handshake. Output is written out before the
    /// MPM takes over, since its first wait is for input.
    package func open() -> Next {
        call("onOpen") { handler, connection in try handler.onOpen(connection) }
        var next = step(reading: true)
        if next == .output {
            do {
                outputPending = try io.flush(waiting: true)
                next = step(reading: true)
            } catch {
                next = finishNow()
            }
        }
        return next == .output ? .input : next
    }

    /// The MPM resumed the connection (its `process_connection` hook).
    package func resume() -> Next {
        step(reading: true)
    }

    /// The MPM parked it (`suspend_connection` hook).
    package func parked() {
        if gate.park() { io.scheduleTimer(after: .zero) }
    }

    /// The MPM is taking it back (`resume_connection` hook): waits for a
    /// timer's step to end.
    package func reclaimed() {
        gate.reclaim()
    }

    /// A timer fired: a deadline may have passed, or another thread queued
    /// messages. Runs only while the connection is parked.
    package func timerFired() {
        guard gate.takeForTimer() else { return }
        // Named once held: till then the MPM may be ending the connection.
        io.runningHandlerCode {
            repeat {
                if let due = timerDue, due <= .now { timerDue = nil }
                if step(reading: false) == .closed {
                    // Make the MPM resume it, see it closed and let it go.
                    io.shutdown()
                }
            } while !gate.releaseFromTimer()
        }
    }

    /// The MPM gave up waiting (httpd's `Timeout`) and is closing the
    /// connection (`pre_close_connection` hook): a 1001 if it can be
    /// written at once, and `onClose`.
    package func abandon() {
        guard !finished else { return }
        io.log(.info, "no input or output for httpd's Timeout while waiting in the MPM; closing with 1001")
        try? core.close(code: .goingAway, reason: "timeout", at: .now, write)
        dropTransport()
        _ = finishNow()
    }

    /// The connection's memory is going (its pool is destroyed): nothing is
    /// written any more. `onClose` runs if it has not.
    package func detach() {
        core.endTransport()
        _ = finishNow()
    }

    // MARK: A step

    private func step(reading: Bool) -> Next {
        guard !finished else { return .closed }
        var turnEnded = false
        transport.beginDriving()
        defer { transport.endDriving() }
        let now = MonotonicInstant.now
        do {
            if outputPending { outputPending = try io.flush(waiting: false) }
            // While output waits, input waits too: a client that does not
            // read cannot make us queue more for it.
            if reading && !outputPending { turnEnded = try readAll(at: now) }
            try takeEvents()
            try deliverQueued()
            if try core.actOnDeadlines(at: now, isStopping: io.isStopping, write) == .drop { dropTransport() }
            // A message timed out or revoked by the budget (actOnDeadlines).
            try takeEvents()
            if !core.transportClosed { outputPending = try io.flush(waiting: false) }
        } catch {
            core.endTransport()
        }
        if core.isFinished { return finishNow() }
        scheduleNextTimer(now: now, retryingOutput: outputPending && !reading)
        // A turn that ended with input still there waits for writability,
        // which the MPM reports at once: the connection goes to the back
        // of the MPM's queue, and what mod_ssl may hold is read when it
        // comes back, not left for a poll that cannot see it.
        return outputPending || turnEnded ? .output : .input
    }

    /// Reads until nothing is left, handling events as they come so one
    /// read buffer serves any amount of input; or until a turn's work
    /// (`workTurn`: bytes read and inflated) is done, then returns true: a
    /// client that never stops sending must not keep a worker from the
    /// others. What was read and not parsed waits in `unparsed`. The read
    /// that finds nothing is not spared: under load it often finds the
    /// client's next message, which saves a trip through the MPM (sparing
    /// it made the echo rows about a quarter slower).
    private func readAll(at now: MonotonicInstant) throws -> Bool {
        var work = Self.workTurn
        while core.isReading {
            guard work > 0 else { return true }
            if let pacing, !pacing.acceptsInput {
                try waitForHandler(pacing)
                continue
            }
            if unparsed.isEmpty {
                guard let count = try? core.read(at: now, { () throws(WebSocketError) in try io.read(into: readBuffer) }),
                      count > 0 else { return false }
                unparsed = 0..<count
            }
            let parsed = core.receive(UnsafeRawBufferPointer(rebasing: readBuffer[unparsed]), work: &work)
            unparsed = unparsed.dropFirst(parsed)
            try takeEvents()
            try deliverQueued()
        }
        return false
    }

    /// The handler is behind its input (its queue is full): this step
    /// keeps the worker, writing what the handler sends and meeting the
    /// deadlines, until it catches up. httpd 2.4's event MPM has no state
    /// for a connection whose socket it must not watch: one that waited
    /// for input would be resumed at once by what the client sent.
    private func waitForHandler(_ pacing: any PacedInput) throws {
        while !pacing.acceptsInput && core.isReading {
            try deliverQueued()
            if try core.actOnDeadlinesWhileInputHeld(at: .now, isStopping: io.isStopping, write) == .drop {
                dropTransport()
                return
            }
            outputPending = try io.flush(waiting: false)
            usleep(ConnectionCore.inputHeldPollMicroseconds)
        }
    }

    /// Whether the close or violation that comes next waits for a handler
    /// that answers later (`PacedInput`) to answer what came before it, up
    /// to `ConnectionCore.catchUpBeforeClosing`. The connection waits
    /// parked, looked at again by a timer: the client has sent what it
    /// had, so the MPM does not resume it for input meanwhile.
    private func closeAwaitsHandler() -> Bool {
        guard let pacing, core.nextEventEndsInput, !pacing.isCaughtUp else {
            catchUpDeadline = nil
            return false
        }
        let now = MonotonicInstant.now
        let deadline = catchUpDeadline ?? now.advanced(by: ConnectionCore.catchUpBeforeClosing)
        guard now < deadline else {
            catchUpDeadline = nil
            return false
        }
        catchUpDeadline = deadline
        io.scheduleTimer(after: .milliseconds(2))
        return true
    }

    private func takeEvents() throws {
        while true {
            if closeAwaitsHandler() { return }
            guard let event = try core.nextEvent(write) else { return }
            switch event {
            case .message(let message):
                // After our close, messages still arriving are dropped.
                if core.state == .open {
                    call("onMessage") { handler, connection in try handler.onMessage(message, from: connection) }
                    // Before the next event: what the callback sent goes
                    // out ahead of a close or failure that came after its
                    // message, in the order the client sent them.
                    try deliverQueued()
                }
            case .pong(let payload):
                // An awaited ping's (any input answers the keepalive's,
                // ConnectionCore.read).
                (handler as? any PongListener)?.onPong(payload)
            case .peerClosed:
                // Answer with the client's code, unless ours went first.
                if core.state == .closeReceived {
                    try core.close(code: core.peerClose?.code, reason: "", at: .now, write)
                }
            }
        }
    }

    /// Runs a handler callback, timed for SwiftWebSocketSlowCallback; one
    /// that throws closes with 1011.
    private func call(_ name: StaticString,
                      _ body: (inout any WebSocketEventHandler, WebSocketConnection) throws -> Void) {
        do {
            try slowCalls.timing(name, log: io.log) { try body(&handler, connection) }
        } catch {
            io.log(.error, "\(handlerName) threw \(error); closing with 1011")
            try? core.close(code: .internalError, reason: "", at: .now, write)
        }
    }

    /// Writes what the handler and other threads queued, and runs an async
    /// handler's jobs in between, so that what it sends in answer goes out
    /// in this step; a task that keeps making jobs gets a timer step for
    /// the rest.
    private func deliverQueued() throws {
        try deliverOutbox()
        guard let handlerJobs else { return }
        for _ in 0..<Self.handlerJobBatches {
            guard handlerJobs.runPending() else { return }
            try deliverOutbox()
        }
        if handlerJobs.hasPending { io.scheduleTimer(after: .zero) }
    }

    /// Writes what the handler and other threads queued, in order, while
    /// the socket takes it; what the core took and could not write waits
    /// there for the next step. A close the outbox asks for is sent at
    /// once, also while the socket is full.
    private func deliverOutbox() throws {
        while true {
            switch try core.deliverQueued(write, writable: !outputPending) {
            case .nothing: return
            case .delivered: outputPending = try io.flush(waiting: false)
            case .close(let code, let reason):
                try core.close(code: code, reason: reason, at: .now, write)
                return
            }
        }
    }

    // MARK: Deadlines

    /// Schedules a timer for the next deadline unless an earlier one is
    /// pending (MPM timers cannot be cancelled: one that fires early finds
    /// nothing to do and schedules the next).
    private func scheduleNextTimer(now: MonotonicInstant, retryingOutput: Bool) {
        var next = core.nextDeadline
        if retryingOutput {
            let retry = now.advanced(by: Self.outputRetry)
            next = next.map { min($0, retry) } ?? retry
        }
        guard let next else { return }
        if let due = timerDue, due > now, due <= next { return }
        timerDue = next
        io.scheduleTimer(after: next > now ? next - now : .zero)
    }

    // MARK: The end

    /// Writes what it can of a last close frame without waiting, and ends
    /// the transport.
    private func dropTransport() {
        _ = try? io.flush(waiting: false)
        core.endTransport()
    }

    /// Marks the connection closed and runs `onClose`, once.
    private func finishNow() -> Next {
        if !finished {
            finished = true
            core.shutOutbox()
            let (code, reason) = core.peerClose.map { ($0.code ?? .noStatusReceived, $0.reason) } ?? (.abnormalClosure, "")
            slowCalls.timing("onClose", log: io.log) { handler.onClose(connection, code: code, reason: reason) }
            if let handlerJobs {
                // A task that ends when cancelled ends here; what it does
                // later runs elsewhere.
                _ = handlerJobs.runPending()
                handlerJobs.retire()
            }
        }
        return .closed
    }
}

/// A parked connection's side that other threads see: the outbox, and the
/// timer that wakes the connection for it. The thread driving the
/// connection (a callback sending) does not need waking: it writes the
/// outbox before it lets the connection go.
private final class ParkedTransport: MessageTransport {
    let outbox: Outbox
    private let io: any ParkedConnectionIO
    /// The thread in a step, as pthread_self() bits; 0 when none.
    private let drivingThread = Atomic<UInt>(0)

    init(outbox: Outbox, io: any ParkedConnectionIO) {
        self.outbox = outbox
        self.io = io
    }

    func beginDriving() {
        drivingThread.store(UInt(pthread_self()), ordering: .relaxed)
    }

    func endDriving() {
        drivingThread.store(0, ordering: .relaxed)
    }

    private var isDriving: Bool {
        drivingThread.load(ordering: .relaxed) == UInt(pthread_self())
    }

    var isOpen: Bool { outbox.isOpen }

    func waitForRoomToSend() async {
        await outbox.waitForRoomToSend()
    }

    func waitForRoomToStream() async {
        await outbox.waitForRoomToStream()
    }

    func queue(_ item: Outbox.Item) throws {
        try enqueue(item)
    }

    func send(_ message: Message) throws {
        try enqueue(.message(message))
    }

    func send(_ shared: SharedMessage) throws {
        try enqueue(.shared(shared))
    }

    func requestClose(code: CloseCode, reason: String) {
        try? enqueue(.close(code, reason: reason))
    }

    private func enqueue(_ item: Outbox.Item) throws {
        do {
            if try outbox.enqueue(item) { _ = wakeUnlessDriving() }
        } catch .peerTooSlow {
            _ = wakeUnlessDriving()  // its step closes it with 1008
            throw WebSocketError.peerTooSlow
        }
    }

    /// Has a timer step the connection, unless this thread is in a step
    /// (which writes the outbox and runs the handler's jobs before it
    /// ends). Returns whether it did.
    func wakeUnlessDriving() -> Bool {
        guard !isDriving else { return false }
        io.scheduleTimer(after: .zero)
        return true
    }
}
