import Synchronization

/// The messages an async handler has not taken yet (`AsyncWebSocket.messages`),
/// bounded: once it holds `pauseAtMessages` messages or `pauseAtBytes`
/// bytes the connection's driver stops reading (`hasRoom`), so a handler
/// that does not consume makes TCP push back on the client instead of
/// growing memory. The driver pushes from its thread; the handler's task
/// takes.
final class InboundMessages: Sendable {
    static let pauseAtMessages = 16
    static let pauseAtBytes = 64 * 1024

    private struct State {
        /// Oldest first from `head` on: taking is O(1), and the array is
        /// compacted once it is all taken.
        var messages: [Message] = []
        var head = 0
        var bytes = 0
        var isFinished = false
        /// The handler's task, waiting in `next()` for a message.
        var waiter: CheckedContinuation<Message?, any Error>?
    }

    private let state = Mutex(State())
    /// Read by the driver on every pass; set under the lock.
    private let room = Atomic(true)

    /// Whether the driver may read more input for it.
    var hasRoom: Bool { room.load(ordering: .acquiring) }

    /// Whether the handler took every message and waits for the next (or
    /// has ended): whatever it sends in answer to them is queued.
    var isCaughtUp: Bool {
        state.withLock { state in
            state.head == state.messages.count && (state.waiter != nil || state.isFinished)
        }
    }

    /// A message arrived. Always taken: what was read already is kept, and
    /// the driver looks at `hasRoom` before it reads more.
    func push(_ message: Message) {
        let waiter = state.withLock { state -> CheckedContinuation<Message?, any Error>? in
            guard !state.isFinished else { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.messages.append(message)
            state.bytes += message.byteCount
            updateRoom(&state)
            return nil
        }
        waiter?.resume(returning: message)
    }

    /// No more messages: the connection closed. The handler's `next()`
    /// returns nil once it took what came before.
    func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Message?, any Error>? in
            state.isFinished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// The handler's task ended: what waits is dropped, and the driver
    /// reads on (to the client's close) however much more comes.
    func handlerEnded() {
        state.withLock { state in
            state.isFinished = true
            state.messages = []
            state.head = 0
            state.bytes = 0
            updateRoom(&state)
        }
    }

    /// The next message, waiting for one; nil once the connection closed
    /// and every message was taken. Throws `CancellationError` if the task
    /// is cancelled while it waits.
    func next() async throws -> Message? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Message?, any Error>) in
                let taken: Result<Message?, any Error>? = state.withLock { state in
                    if state.head < state.messages.count {
                        let message = state.messages[state.head]
                        state.head += 1
                        state.bytes -= message.byteCount
                        if state.head == state.messages.count {
                            state.messages.removeAll(keepingCapacity: true)
                            state.head = 0
                        }
                        updateRoom(&state)
                        return .success(message)
                    }
                    if state.isFinished { return .success(nil) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiter = waiter
                    return nil
                }
                if let taken { waiter.resume(with: taken) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    private func updateRoom(_ state: inout State) {
        let held = state.messages.count - state.head
        room.store(held < Self.pauseAtMessages && state.bytes < Self.pauseAtBytes, ordering: .releasing)
    }
}
