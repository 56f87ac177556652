/// A connection's clock, Sans-I/O: when the peer was last heard, when a
/// message last went either way, the keepalive ping awaiting an answer and
/// our close awaiting the peer's. Both drivers (the blocking loop and the
/// parked steps) tell it what happened and ask it, with the time they read,
/// what is due and when to look again; what it decides is a value, so it
/// is tested with any clock.
package struct ConnectionDeadlines {
    /// What a passed deadline asks of the driver.
    package enum Due: Equatable {
        /// Nothing has passed.
        case none
        /// Quiet for `pingInterval`: send the keepalive ping, then `pingSent`.
        case keepalivePing
        /// The keepalive ping went unanswered for `pingTimeout`: close with
        /// 1011 and drop the connection.
        case peerGone
        /// No message for `idleTimeout`: start closing with 1001.
        case idle
        /// No close frame from the peer within `closeTimeout` of ours: drop
        /// the connection.
        case closeTimedOut
    }

    /// Keepalive pings carry this, so their pongs are told from the
    /// handler's.
    package static let keepalivePayload = Array("swiftwebsocket-keepalive".utf8)

    package let keepalive: Keepalive
    package let intervals: Keepalive.Nanoseconds
    /// When bytes last arrived, for the keepalive ping.
    private(set) var lastHeard: MonotonicInstant
    /// When a message last went either way, for the idle timeout.
    private var lastMessage: MonotonicInstant
    /// The keepalive ping awaiting any sign of life, if one was sent.
    private var keepalivePingSentAt: MonotonicInstant?
    /// When we started the closing handshake.
    private var closeSentAt: MonotonicInstant?

    package init(_ keepalive: Keepalive, now: MonotonicInstant) {
        self.keepalive = keepalive
        self.intervals = Keepalive.Nanoseconds(keepalive)
        self.lastHeard = now
        self.lastMessage = now
    }

    /// Whether sends must tell `messageSent()`: the idle timeout is the
    /// only reader, and the clock read is spared without one.
    package var watchesSentMessages: Bool { intervals.idleTimeout != nil }

    /// Bytes arrived: any input answers the keepalive ping.
    package mutating func heard(at now: MonotonicInstant) {
        lastHeard = now
        keepalivePingSentAt = nil
    }

    /// A message arrived, when its last bytes were heard: one clock read
    /// fewer per message.
    package mutating func messageReceived() {
        lastMessage = lastHeard
    }

    package mutating func messageSent(at now: MonotonicInstant) {
        lastMessage = now
    }

    package mutating func keepalivePingSent(at now: MonotonicInstant) {
        keepalivePingSentAt = now
    }

    package mutating func closeSent(at now: MonotonicInstant) {
        closeSentAt = now
    }

    /// The deadline that has passed at `now`, the most final first: once
    /// our close is out only its timeout counts.
    package func due(at now: MonotonicInstant) -> Due {
        if let closeSentAt {
            return now >= closeSentAt.advanced(by: intervals.closeTimeout) ? .closeTimedOut : .none
        }
        if let pingSentAt = keepalivePingSentAt {
            if now >= pingSentAt.advanced(by: intervals.pingTimeout) { return .peerGone }
        } else if let interval = intervals.pingInterval, now >= lastHeard.advanced(by: interval) {
            return .keepalivePing
        }
        if let idleTimeout = intervals.idleTimeout, now >= lastMessage.advanced(by: idleTimeout) { return .idle }
        return .none
    }

    /// The next deadline, with `messageDue` (the engine's message timeout),
    /// if any; nil: none, wait for input alone.
    package func next(messageDue: MonotonicInstant?) -> MonotonicInstant? {
        if let closeSentAt { return closeSentAt.advanced(by: intervals.closeTimeout) }
        var next = messageDue
        if let pingSentAt = keepalivePingSentAt {
            next = earliest(next, pingSentAt.advanced(by: intervals.pingTimeout))
        } else if let interval = intervals.pingInterval {
            next = earliest(next, lastHeard.advanced(by: interval))
        }
        if let idleTimeout = intervals.idleTimeout {
            next = earliest(next, lastMessage.advanced(by: idleTimeout))
        }
        return next
    }

    private func earliest(_ a: MonotonicInstant?, _ b: MonotonicInstant) -> MonotonicInstant {
        a.map { min($0, b) } ?? b
    }

    /// The error log's line for what `due` asks.
    package func logLine(for due: Due) -> String {
        switch due {
        case .none, .keepalivePing: ""
        case .peerGone: "no answer to a keepalive ping within \(keepalive.pingTimeout); closing with 1011"
        case .idle: "no message for \(keepalive.idleTimeout ?? .zero); closing with 1001"
        case .closeTimedOut: "no close frame from the client within \(keepalive.closeTimeout); dropping it"
        }
    }
}
