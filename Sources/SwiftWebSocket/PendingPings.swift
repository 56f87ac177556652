import Synchronization

/// The pings an async handler awaits (`AsyncWebSocket.ping()`). Each
/// carries a number of its own; a pong answers its ping and every earlier
/// one, since a client may answer only the latest (RFC 6455 5.5.3).
final class PendingPings: Sendable {
    private struct Waiting {
        let number: UInt64
        let queuedAt: ContinuousClock.Instant
        let waiter: CheckedContinuation<Duration, any Error>
    }

    private struct State {
        var nextNumber: UInt64 = 0
        var waiting: [Waiting] = []
        var isClosed = false
    }

    private let state = Mutex(State())
    /// Marks our payloads apart from the keepalive's and the client's own.
    private static let tag = Array("swiftwebsocket-ping:".utf8)

    /// Queues a ping through `connection` and returns the time from then to
    /// its pong; throws `WebSocketError.closed` if the connection closes
    /// first.
    func ping(through connection: WebSocketConnection) async throws -> Duration {
        try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Duration, any Error>) in
            let number = state.withLock { state -> UInt64? in
                guard !state.isClosed else { return nil }
                defer { state.nextNumber += 1 }
                state.waiting.append(Waiting(number: state.nextNumber, queuedAt: .now, waiter: waiter))
                return state.nextNumber
            }
            guard let number else {
                waiter.resume(throwing: WebSocketError.closed)
                return
            }
            do {
                try connection.queuePing(Self.tag + Array(String(number).utf8))
            } catch {
                let unsent = state.withLock { state in
                    state.waiting.firstIndex { $0.number == number }.map { state.waiting.remove(at: $0) }
                }
                unsent?.waiter.resume(throwing: error)
            }
        }
    }

    /// A pong came: the pings it answers return. Others' pongs are ignored.
    func pongArrived(_ payload: [UInt8]) {
        guard payload.starts(with: Self.tag),
              let number = UInt64(String(decoding: payload.dropFirst(Self.tag.count), as: UTF8.self)) else { return }
        let now = ContinuousClock.now
        let answered = state.withLock { state in
            // In the order they were numbered.
            let split = state.waiting.firstIndex { $0.number > number } ?? state.waiting.count
            defer { state.waiting.removeFirst(split) }
            return Array(state.waiting[..<split])
        }
        for ping in answered { ping.waiter.resume(returning: now - ping.queuedAt) }
    }

    /// The connection closed: every ping still waiting throws, and later
    /// ones at once.
    func connectionClosed() {
        let waiting = state.withLock { state in
            state.isClosed = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for ping in waiting { ping.waiter.resume(throwing: WebSocketError.closed) }
    }
}
