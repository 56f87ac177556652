import Synchronization

/// What other threads hand to a connection: httpd's filters are not
/// thread-safe, so only the thread that owns the connection writes to it.
/// A sender queues here and wakes the owner; the owner takes the queue
/// whenever it waits for input or sends itself.
///
/// A peer that reads too slowly must not make its senders wait or grow
/// memory without bound: past `limit` queued bytes, sends fail and the
/// owner closes the connection with 1008.
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
        /// The owner was woken and has not taken the queue since.
        var wakePending = false
        var isOpen = true
        var overflowed = false
    }

    private let state = Mutex(State())
    /// Whether `takeAll` has anything to take (items or an overflow): the
    /// owner looks on every pass of its receive loop, almost always to find
    /// nothing, and this spares it the lock. Set under the lock by
    /// senders; a sender that sets it also wakes the owner, so a pass that
    /// missed it by a moment is followed by one that sees it.
    private let hasNews = Atomic(false)
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    /// Whether the connection still accepts messages.
    var isOpen: Bool { state.withLock { $0.isOpen } }

    /// Whether a send was refused for lack of room, without taking the
    /// queue: a parked connection looks while its socket is still full.
    var hasOverflowed: Bool { state.withLock { $0.overflowed } }

    /// Queues `item`. Returns whether the owner must be woken (it was not
    /// already); throws when the connection is closed or too far behind.
    func enqueue(_ item: Item) throws(WebSocketError) -> Bool {
        let size: Int
        switch item {
        case .message(let message): size = message.byteCount
        case .shared(let shared): size = shared.message.byteCount
        case .close: size = 0
        }
        return try state.withLock { state throws(WebSocketError) in
            guard state.isOpen else { throw .closed }
            guard state.queuedBytes + size <= limit else {
                // Closed to everyone from now on; the owner, told by
                // takeAll, sends the 1008.
                state.isOpen = false
                state.overflowed = true
                hasNews.store(true, ordering: .releasing)
                throw .peerTooSlow
            }
            state.items.append(item)
            state.queuedBytes += size
            hasNews.store(true, ordering: .releasing)
            defer { state.wakePending = true }
            return !state.wakePending
        }
    }

    /// Everything queued, and whether a send was refused for lack of room
    /// (the outbox then refuses every later item).
    func takeAll() -> (items: [Item], overflowed: Bool) {
        guard hasNews.load(ordering: .acquiring) else { return ([], false) }
        return state.withLock { state in
            defer {
                state.items = []
                state.queuedBytes = 0
                state.wakePending = false
                state.overflowed = false  // reported once
                hasNews.store(false, ordering: .relaxed)
            }
            return (state.items, state.overflowed)
        }
    }

    /// Refuses every later item; what is queued is dropped.
    func close() {
        state.withLock { state in
            state.isOpen = false
            state.items = []
            state.queuedBytes = 0
            // An overflow is moot once closing: the owner's close stands.
            state.overflowed = false
            hasNews.store(false, ordering: .relaxed)
        }
    }
}
