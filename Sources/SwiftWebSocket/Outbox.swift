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
package final class Outbox: Sendable {
    package enum Item: Sendable {
        case message(Message)
        /// A broadcast's message, the same object in every member's outbox.
        case shared(SharedMessage)
        /// A piece of a streamed message (`AsyncWebSocket.MessageWriter`).
        case fragment(Opcode, [UInt8], isFinal: Bool)
        /// A ping whose pong is awaited (`AsyncWebSocket.ping()`).
        case ping([UInt8])
        case close(CloseCode, reason: String)

        /// What may be written while a streamed message is unfinished:
        /// its own pieces and control frames (RFC 6455 5.4). A close there
        /// ends the message unfinished.
        var goesBetweenFragments: Bool {
            switch self {
            case .fragment, .ping, .close: return true
            case .message, .shared: return false
            }
        }

        /// Bytes it adds to the queue, and to the memory budget (a
        /// broadcast's shared message is charged once, by itself).
        fileprivate var cost: (queued: Int, charged: Int) {
            switch self {
            case .message(let message): return (message.byteCount, message.byteCount)
            case .shared(let shared): return (shared.message.byteCount, 0)
            case .fragment(_, let payload, _): return (payload.count, payload.count)
            case .ping(let payload): return (payload.count, payload.count)
            case .close: return (0, 0)
            }
        }
    }

    /// An item and its place in the order it was queued: a streamed
    /// message's pieces overtake what was queued after it began, and what
    /// they overtook goes next, in this order.
    struct Entry: Sendable {
        let sequence: UInt64
        let item: Item
    }

    private struct State {
        var entries: [Entry] = []
        var nextSequence: UInt64 = 0
        var queuedBytes = 0
        /// The part of `queuedBytes` that goes between fragments: what a
        /// streamed message's writer waits on, since the rest waits for
        /// the message to end.
        var betweenFragmentsBytes = 0
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
        let (size, charged) = item.cost
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
            state.entries.append(Entry(sequence: state.nextSequence, item: item))
            state.nextSequence += 1
            state.queuedBytes += size
            if item.goesBetweenFragments { state.betweenFragmentsBytes += size }
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
    func takeAll() -> (entries: [Entry], overflow: CloseCode?) {
        take(where: nil)
    }

    /// What goes between fragments (`Item.goesBetweenFragments`), for the
    /// owner in the middle of a streamed message; the rest stays queued,
    /// and counts against `limit`, until the message ends.
    func takeBetweenFragments() -> (entries: [Entry], overflow: CloseCode?) {
        take { $0.goesBetweenFragments }
    }

    /// Takes the entries `isTaken` picks, all of them when nil (the usual
    /// case, without a pass over them).
    private func take(where isTaken: ((Item) -> Bool)?) -> (entries: [Entry], overflow: CloseCode?) {
        guard hasNews.load(ordering: .acquiring) else { return ([], nil) }
        let (taken, waiters) = state.withLock { state in
            var taken: [Entry] = [], kept: [Entry] = []
            var takenCharge = 0
            if let isTaken {
                for entry in state.entries {
                    guard isTaken(entry.item) else {
                        kept.append(entry)
                        continue
                    }
                    let (size, charged) = entry.item.cost
                    taken.append(entry)
                    state.queuedBytes -= size
                    if entry.item.goesBetweenFragments { state.betweenFragmentsBytes -= size }
                    takenCharge += charged
                }
            } else {
                swap(&taken, &state.entries)
                takenCharge = state.chargedBytes
                state.queuedBytes = 0
                state.betweenFragmentsBytes = 0
            }
            memory?.give(takenCharge, for: .outbox)
            state.chargedBytes -= takenCharge
            state.entries = kept
            state.wakePending = false
            defer {
                state.overflow = nil  // reported once
                state.roomWaiters = []
                // What stays waits for a message's end, which a take
                // after it sees.
                hasNews.store(!kept.isEmpty, ordering: .relaxed)
            }
            return ((taken, state.overflow), state.roomWaiters)
        }
        for waiter in waiters { waiter.resume() }
        return taken
    }

    /// Suspends while `highWater` bytes or more wait, until the owner takes
    /// them (the socket took what came before) or the outbox closes: an
    /// async sender's backpressure, where a thread's send would fail past
    /// `limit` instead.
    /// `betweenFragments`: count only what goes between fragments, for a
    /// streamed message's writer (what waits for its end cannot leave
    /// before it).
    func waitForRoom(below highWater: Int, betweenFragments: Bool = false) async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let waits = state.withLock { state in
                let queued = betweenFragments ? state.betweenFragmentsBytes : state.queuedBytes
                guard state.isOpen, queued >= highWater else { return false }
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
            state.entries = []
            state.queuedBytes = 0
            state.betweenFragmentsBytes = 0
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
