import Synchronization

/// How named groups reach other processes: the bridge's, over the shim's
/// broker connections (`SwiftWebSocketBroker`). Never waits for a broker.
package protocol GroupBroker: Sendable {
    /// Queues `payload` for the group's channel: true when it will come
    /// back through the channel to every subscribed process, this one
    /// included; false when the broker cannot take it now (unreachable or
    /// too far behind), and this process's members are the caller's to
    /// reach.
    func publish(group: String, payload: [UInt8]) -> Bool
    /// This process has its first member of `group`.
    func subscribe(group: String)
    /// This process lost its last member of `group`.
    func unsubscribe(group: String)
}

/// This process's members of every named group, by name, and the broker
/// their messages go through. A group is here while it has members, so
/// names chosen by clients (rooms from a query) leave nothing behind; its
/// channel is subscribed exactly as long.
package enum NamedGroups {
    private struct Setup: Sendable {
        var broker: (any GroupBroker)?
        var maxMessageSize = Limits().maxMessageSize
        /// The MPM may run more than one child process.
        var severalProcesses = false
        var log: @Sendable (LogLevel, String) -> Void = { _, _ in }
    }

    private static let setup = Mutex(Setup())
    private static let groups = Mutex<[String: GroupMembers]>([:])
    private static let warnedWithoutBroker = Atomic(false)
    private static let foreignMessages = Mutex(ForeignMessageLog())

    /// Once per child process, before any handler runs.
    package static func configure(broker: (any GroupBroker)?, maxMessageSize: Int, severalProcesses: Bool,
                                  log: @escaping @Sendable (LogLevel, String) -> Void) {
        setup.withLock { $0 = Setup(broker: broker, maxMessageSize: maxMessageSize,
                                    severalProcesses: severalProcesses, log: log) }
    }

    private static var current: Setup { setup.withLock { $0 } }

    /// A named group is being made: without a broker, on an MPM with
    /// several children, its members in other processes are out of reach;
    /// said once per process.
    static func noteUse(of name: String) {
        let setup = current
        guard setup.broker == nil, setup.severalProcesses,
              !warnedWithoutBroker.exchange(true, ordering: .relaxed) else { return }
        setup.log(.warning, "WebSocketGroup(named: \(String(reflecting: name))) reaches only the members in its "
                  + "own process: httpd may run several child processes and no SwiftWebSocketBroker is set")
    }

    static func join(_ name: String, _ member: any MessageRecipient) {
        let broker = current.broker
        groups.withLock { groups in
            let isFirst = groups[name] == nil
            groups[name, default: GroupMembers()].insert(member)
            // Under the lock: the broker sees subscribes and unsubscribes
            // of one group in the order they happened.
            if isFirst { broker?.subscribe(group: name) }
        }
    }

    static func leave(_ name: String, _ member: any MessageRecipient) {
        let broker = current.broker
        groups.withLock { groups in
            guard groups[name]?.remove(member) == true, groups[name]?.isEmpty == true else { return }
            groups[name] = nil
            broker?.unsubscribe(group: name)
        }
    }

    static func count(of name: String) -> Int {
        groups.withLock { $0[name]?.count ?? 0 }
    }

    static func members(of name: String) -> [any MessageRecipient] {
        groups.withLock { $0[name]?.recipients ?? [] }
    }

    static func broadcast(_ message: Message, to name: String) throws(WebSocketError) -> Int {
        let setup = current
        guard message.byteCount <= setup.maxMessageSize else { throw .messageTooBig(limit: setup.maxMessageSize) }
        if let broker = setup.broker, broker.publish(group: name, payload: BrokerEnvelope.encode(message)) {
            return count(of: name)
        }
        return deliver(message, to: name)
    }

    /// A message arrived on `name`'s channel (on the broker's thread).
    package static func received(_ payload: UnsafeRawBufferPointer, on name: String) {
        guard let message = BrokerEnvelope.decode(payload) else {
            if let dropped = foreignMessages.withLock({ $0.count(at: .now) }) {
                current.log(.warning, "dropped \(dropped) message(s) on the broker channel of group "
                            + "\(String(reflecting: name)) not published by mod_swiftwebsocket")
            }
            return
        }
        deliver(message, to: name)
    }

    @discardableResult
    private static func deliver(_ message: Message, to name: String) -> Int {
        GroupMembers.deliver(message, to: members(of: name)) { member in leave(name, member) }
    }
}

/// Messages on our channels that are not ours (another program publishing
/// there): logged at most once every 10 seconds, with a count.
private struct ForeignMessageLog {
    private var unreported = 0
    private var lastReport: MonotonicInstant?

    /// Counts one; returns how many to report now, if it is time to.
    mutating func count(at now: MonotonicInstant) -> Int? {
        unreported += 1
        if let lastReport, now < lastReport.advanced(by: 10_000_000_000) { return nil }
        lastReport = now
        defer { unreported = 0 }
        return unreported
    }
}
