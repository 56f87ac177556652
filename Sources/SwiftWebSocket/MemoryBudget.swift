import Synchronization

/// What one httpd child may hold for its connections' messages
/// (`SwiftWebSocketMemoryLimit`): partly received messages (reassembled or
/// inflated), what waits in outboxes, and broadcasts (once, however many
/// outboxes share them). Memory is taken before it is allocated, never
/// after; when the budget would pass its limit, the connections holding
/// the most give theirs up (they close with 1009, or 1013 for an outbox)
/// before anyone else is refused. What every connection costs anyway (its
/// read buffer, Apache's pools) is bounded by the connection limits, not
/// here.
package final class MemoryBudget: Sendable {
    package static let shared = MemoryBudget()

    /// Bytes; 0 for no limit (still counted).
    private let limitBytes = Atomic(0)
    private let used = Atomic(0)
    /// The open accounts, held weakly: an account ends with its connection.
    private let accounts = Mutex<[ObjectIdentifier: WeakAccount]>([:])
    private let episode = Mutex(Episode())
    private let reclaiming = Mutex(())
    /// `episode.isOn`, read without its lock on every give.
    private let episodeIsOn = Atomic(false)
    private let log = Mutex<@Sendable (LogLevel, String) -> Void>({ _, _ in })
    private let episodeEnded = Mutex<@Sendable () -> Void>({})

    /// Holders smaller than this are never closed to make room: a client
    /// with small messages does not notice an attack on the budget.
    static let smallestEvicted = 64 * 1024

    package init() {}

    /// Once per child process, before any connection. `episodeEnded` runs
    /// when the memory an episode took has gone back (the bridge hands
    /// the allocator's free pages back to the system then).
    package func configure(limit: Int, log: @escaping @Sendable (LogLevel, String) -> Void,
                           episodeEnded: @escaping @Sendable () -> Void = {}) {
        limitBytes.store(max(0, limit), ordering: .relaxed)
        self.log.withLock { $0 = log }
        self.episodeEnded.withLock { $0 = episodeEnded }
    }

    package var limit: Int { limitBytes.load(ordering: .relaxed) }
    package var inUse: Int { used.load(ordering: .relaxed) }

    /// An account for one connection's holdings.
    package func openAccount() -> MemoryAccount {
        let account = MemoryAccount(budget: self)
        accounts.withLock { $0[ObjectIdentifier(account)] = WeakAccount(account: account) }
        return account
    }

    func closeAccount(_ id: ObjectIdentifier) {
        _ = accounts.withLock { $0.removeValue(forKey: id) }
    }

    /// Adds `bytes` to what is in use if it stays within the limit.
    private func tryAdd(_ bytes: Int) -> Bool {
        let limit = self.limit
        var current = used.load(ordering: .relaxed)
        while true {
            guard limit == 0 || current + bytes <= limit else { return false }
            let (exchanged, original) = used.compareExchange(expected: current, desired: current + bytes,
                                                             ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    /// Takes `bytes` for `account`, making room by closing the largest
    /// holders if need be. False when there is none to make (the asker is
    /// then among the largest, or the limit is smaller than its request).
    func take(_ bytes: Int, for account: MemoryAccount) -> Bool {
        if tryAdd(bytes) { return true }
        reclaim(room: bytes)
        if !account.isRevoked && tryAdd(bytes) { return true }
        episode.withLock { $0.refusals += 1 }
        return false
    }

    /// Takes `bytes` that exist already (a broadcast's message), closing
    /// the largest holders if they do not fit.
    func force(_ bytes: Int) {
        guard bytes > 0 else { return }
        if !tryAdd(bytes) {
            reclaim(room: bytes)
            used.add(bytes, ordering: .relaxed)
        }
    }

    func give(_ bytes: Int) {
        guard bytes > 0 else { return }
        let left = used.subtract(bytes, ordering: .relaxed).newValue
        let limit = self.limit
        guard limit > 0, left < limit / 8, episodeIsOn.load(ordering: .relaxed) else { return }
        // Below an eighth of the limit again: the episode, if one was on,
        // is over.
        let ended = episode.withLock { episode -> Episode? in
            guard episode.isOn else { return nil }
            defer {
                episode = Episode()
                episodeIsOn.store(false, ordering: .relaxed)
            }
            return episode
        }
        if let ended {
            self.episodeEnded.withLock { $0 }()
            currentLog("memory budget: back to \(left >> 20) MiB of \(limit >> 20) MiB; \(ended.evictions) "
                       + "connection(s) were closed to make room and \(ended.refusals) refused meanwhile", .notice)
        }
    }

    /// Revokes the largest holdings until `room` more bytes fit below 7/8
    /// of the limit (so one episode does not close connections one by one).
    private func reclaim(room: Int) {
        let limit = self.limit
        guard limit > 0 else { return }
        // One reclaim at a time, so two do not both close connections for
        // the same room. The accounts are taken out of their lock first: an
        // account released here ends (and unregisters) under no lock of ours.
        let revoked = reclaiming.withLock { _ -> [MemoryAccount] in
            let open = accounts.withLock { $0.values.compactMap(\.account) }
            // What each holds now, read once: the counts move while the
            // list is sorted.
            let holders = open.map { ($0, $0.held) }
                .filter { $0.1 >= Self.smallestEvicted && !$0.0.isRevoked }
                .sorted { $0.1 > $1.1 }
            var revoked: [MemoryAccount] = []
            for (holder, _) in holders {
                if used.load(ordering: .relaxed) + room <= limit - limit / 8 { break }
                give(holder.revoke())
                revoked.append(holder)
            }
            return revoked
        }
        guard !revoked.isEmpty else { return }
        let starts = episode.withLock { episode in
            defer {
                episode.isOn = true
                episodeIsOn.store(true, ordering: .relaxed)
                episode.evictions += revoked.count
            }
            return !episode.isOn
        }
        if starts {
            currentLog("memory budget of \(limit >> 20) MiB reached: closing the \(revoked.count) connection(s) "
                       + "holding the most (the largest \(revoked[0].revokedBytes >> 10) KiB); one line when it is over",
                       .warning)
        }
        for account in revoked { account.wakeOwner() }
    }

    private func currentLog(_ line: String, _ level: LogLevel) {
        log.withLock { $0 }(level, line)
    }

    private struct Episode {
        var isOn = false
        var evictions = 0
        var refusals = 0
    }
}

private struct WeakAccount {
    weak var account: MemoryAccount?
}

/// One connection's share of the `MemoryBudget`: what its message in
/// progress and its outbox hold. Any thread may charge it; the budget may
/// revoke it (the connection is then closed by its own driver, which
/// `wakeOwner` wakes) from any thread.
package final class MemoryAccount: Sendable {
    /// What is held and why, for the close code when it is revoked.
    package enum Use: Sendable {
        case message, outbox
    }

    private let budget: MemoryBudget
    private let message = Atomic(0)
    private let outbox = Atomic(0)
    private let revoked = Atomic(false)
    private let revokedTotal = Atomic(0)
    private let largestUse = Atomic(0)  // 0 message, 1 outbox, when revoked
    private let wake = Mutex<(@Sendable () -> Void)?>(nil)

    fileprivate init(budget: MemoryBudget) {
        self.budget = budget
    }

    var held: Int { message.load(ordering: .relaxed) + outbox.load(ordering: .relaxed) }
    var revokedBytes: Int { revokedTotal.load(ordering: .relaxed) }

    /// Whether the budget took this account's memory back: its connection
    /// must close, with `revokedCloseCode`.
    package var isRevoked: Bool { revoked.load(ordering: .acquiring) }

    /// 1009 for a message that cannot be held now, 1013 (try again later)
    /// for an outbox that cannot.
    package var revokedCloseCode: CloseCode {
        largestUse.load(ordering: .relaxed) == 1 ? .tryAgainLater : .messageTooBig
    }

    /// Whom to wake when the budget revokes this account.
    package func onRevoke(_ wakeOwner: @escaping @Sendable () -> Void) {
        wake.withLock { $0 = wakeOwner }
    }

    /// Takes `bytes` for `use` before they are allocated; false when the
    /// budget refuses (the connection then closes).
    package func take(_ bytes: Int, for use: Use) -> Bool {
        guard bytes > 0 else { return true }
        guard !isRevoked, budget.take(bytes, for: self) else { return false }
        switch use {
        case .message: message.add(bytes, ordering: .relaxed)
        case .outbox: outbox.add(bytes, ordering: .relaxed)
        }
        return true
    }

    /// Gives back `bytes` of `use` (nothing once revoked: the budget took it all).
    package func give(_ bytes: Int, for use: Use) {
        guard bytes > 0 else { return }
        let returned = switch use {
        case .message: Self.subtract(bytes, from: message)
        case .outbox: Self.subtract(bytes, from: outbox)
        }
        budget.give(returned)
    }

    /// Takes up to `bytes` from `counter`, never below 0 (a revoke may have
    /// emptied it meanwhile); returns how much it took.
    private static func subtract(_ bytes: Int, from counter: borrowing Atomic<Int>) -> Int {
        var current = counter.load(ordering: .relaxed)
        while current > 0 {
            let amount = min(current, bytes)
            let (exchanged, original) = counter.compareExchange(expected: current, desired: current - amount,
                                                                ordering: .relaxed)
            if exchanged { return amount }
            current = original
        }
        return 0
    }

    /// The connection is gone: everything it held goes back.
    package func close() {
        give(message.load(ordering: .relaxed), for: .message)
        give(outbox.load(ordering: .relaxed), for: .outbox)
        wake.withLock { $0 = nil }
        budget.closeAccount(ObjectIdentifier(self))
    }

    deinit {
        close()
    }

    /// Takes everything back for the budget; returns how much.
    fileprivate func revoke() -> Int {
        let fromMessage = message.exchange(0, ordering: .relaxed)
        let fromOutbox = outbox.exchange(0, ordering: .relaxed)
        largestUse.store(fromOutbox > fromMessage ? 1 : 0, ordering: .relaxed)
        revokedTotal.store(fromMessage + fromOutbox, ordering: .relaxed)
        revoked.store(true, ordering: .releasing)
        return fromMessage + fromOutbox
    }

    fileprivate func wakeOwner() {
        wake.withLock { $0 }?()
    }
}

extension MemoryAccount: MessageMemory {
    package func takeForMessage(_ bytes: Int) -> Bool { take(bytes, for: .message) }
    package func giveFromMessage(_ bytes: Int) { give(bytes, for: .message) }
}
