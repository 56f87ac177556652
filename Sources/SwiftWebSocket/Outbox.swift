import Synchronization

/// What other threads hand to a connection: httpd's filters are not
/// thread-safe, so only the thread that owns the connection writes to it.
/// A sender queues here and wakes the owner; the owner takes the queue
/// whenever it waits for input or sends itself.
///
/// A peer that reads too slowly must not make its senders wait or grow
/// memory without bound: past `limit` queued bytes, sends fail and the
/// owner closes the connection with 1008. What waits is charged to the
/// child's memory budget (a broadcast's shared message is charged once, by
/// itself); a send the budget refuses closes the connection with 1013.
final class Outbox: Sendable {
    enum Item: Sendable {
        case message(Message)
        /// A broadcast's message, the same object in every member's outbox.
        case shared(SharedMessage)
        case close(CloseCode, reason: String)
    }

    private struct State {
        var items: [Item] = []
        var queuedBytes = 0
        /// What the items hold of the memory budget.
        var chargedBytes = 0
        /// The owner was woken and has not taken the queue since.
        var wakePending = false
        var isOpen = true
        /// Why sends were refused, for the owner's close: 1008 past
        /// `limit`, 1013 when the memory budget refused.
        var overflow: CloseCode?
        /// Senders waiting for room (`waitForRoom`), resumed when the owner
        /// takes the queue or it closes.
        var roomWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    /// Whether `takeAll` has anything to take (items or an overflow): the
    /// owner looks on every pass of its receive loop, almost always to find
    /// nothing, and this spares it the lock. Set under the lock by
    /// senders; a sender that sets it also wakes the owner, so a pass that
    /// missed it by a moment is followed by one that sees it.
    private let hasNews = Atomic(false)
    let limit: Int
    private let memory: MemoryAccount?

    init(limit: Int, memory: MemoryAccount? = nil) {
        self.limit = limit
        self.memory = memory
    }

    /// Whether the connection still accepts messages.
    var isOpen: Bool { state.withLock { $0.isOpen } }

    /// The close code for a send refused for lack of room, without taking
    /// the queue: a parked connection looks while its socket is still full.
    var overflow: CloseCode? { state.withLock { $0.overflow } }

    /// Queues `item`. Returns whether the owner must be woken (it was not
    /// already); throws when the connection is closed or too far behind.
    func enqueue(_ item: Item) throws(WebSocketError) -> Bool {
        let size: Int, charged: Int
        switch item {
        case .message(let message): (size, charged) = (message.byteCount, message.byteCount)
        case .shared(let shared): (size, charged) = (shared.message.byteCount, 0)
        case .close: (size, charged) = (0, 0)
        }
        return try state.withLock { state throws(WebSocketError) in
            guard state.isOpen else { throw .closed }
            let fits = state.queuedBytes + size <= limit
            guard fits, memory?.take(charged, for: .outbox) ?? true else {
                // Closed to everyone from now on; the owner, told by
                // takeAll, sends the 1008 (or 1013).
                state.isOpen = false
                state.overflow = fits ? .tryAgainLater : .policyViolation
                hasNews.store(true, ordering: .releasing)
                throw .peerTooSlow
            }
            state.items.append(item)
            state.queuedBytes += size
            state.chargedBytes += charged
            hasNews.store(true, ordering: .releasing)
            defer { state.wakePending = true }
            return !state.wakePending
        }
    }

    /// Everything queued, and the close code if a send was refused for lack
    /// of room (the outbox then refuses every later item). What the owner
    /// takes it writes at once, or holds while the socket is full: no
    /// longer the budget's.
    func takeAll() -> (items: [Item], overflow: CloseCode?) {
        guard hasNews.load(ordering: .acquiring) else { return ([], nil) }
        let (taken, waiters) = state.withLock { state in
            defer {
                memory?.give(state.chargedBytes, for: .outbox)
                state.items = []
                state.queuedBytes = 0
                state.chargedBytes = 0
                state.wakePending = false
                state.overflow = nil  // reported once
                state.roomWaiters = []
                hasNews.store(false, ordering: .relaxed)
            }
            return ((state.items, state.overflow), state.roomWaiters)
        }
        for waiter in waiters { waiter.resume() }
        return taken
    }

    /// Suspends while `highWater` bytes or more wait, until the owner takes
    /// them (the socket took what came before) or the outbox closes: an
    /// async sender's backpressure, where a thread's send would fail past
    /// `limit` instead.
    func waitForRoom(below highWater: Int) async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let waits = state.withLock { state in
                guard state.isOpen, state.queuedBytes >= highWater else { return false }
                state.roomWaiters.append(waiter)
                return true
            }
            if !waits { waiter.resume() }
        }
    }

    /// Refuses every later item; what is queued is dropped.
    func close() {
        let waiters = state.withLock { state in
            state.isOpen = false
            memory?.give(state.chargedBytes, for: .outbox)
            state.items = []
            state.queuedBytes = 0
            state.chargedBytes = 0
            // An overflow is moot once closing: the owner's close stands.
            state.overflow = nil
            hasNews.store(false, ordering: .relaxed)
            defer { state.roomWaiters = [] }
            return state.roomWaiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
