import Synchronization
import Testing
@testable import SwiftWebSocket

/// The child's memory budget (`SwiftWebSocketMemoryLimit`) as the engine
/// charges it: messages in progress, outboxes, the largest holders closed
/// first, and the message timeout.
@Suite struct MemoryBudgetTests {
    static func budget(limit: Int) -> MemoryBudget {
        let budget = MemoryBudget()
        budget.configure(limit: limit) { _, _ in }
        return budget
    }

    static func engine(_ account: MemoryAccount) -> ServerProtocol {
        ServerProtocol(limits: Limits(), compression: nil, memory: account)
    }

    static func failure(_ events: [ServerProtocol.Event]) -> CloseCode? {
        for case .failed(let violation) in events { return violation.closeCode }
        return nil
    }

    @Test func aMessageTakesWhatArrivesNotWhatItsHeaderAnnounces() {
        let budget = Self.budget(limit: 1 << 30)
        var harness = Harness()
        harness.engine = Self.engine(budget.openAccount())
        // A 16 MB binary message announced, 1 KiB of it sent.
        let frame = clientFrame(fin: false, opcode: Op.binary, payload: Array(repeating: 7, count: 1024),
                                announcedLength: 16_000_000)
        #expect(harness.feed(frame).isEmpty)
        #expect(budget.inUse >= 1024 && budget.inUse <= 4096, "\(budget.inUse) bytes taken for 1 KiB")
    }

    @Test func aCompleteMessageGivesItsMemoryBack() {
        let budget = Self.budget(limit: 1 << 30)
        var harness = Harness()
        harness.engine = Self.engine(budget.openAccount())
        let payload = Array(repeating: UInt8(1), count: 200_000)
        #expect(harness.feed(clientFrame(opcode: Op.binary, payload: payload)) == [.message(.binary(payload))])
        #expect(budget.inUse == 0)
    }

    @Test func aMessageTheBudgetCannotHoldClosesWith1009() {
        let budget = Self.budget(limit: 100_000)
        var harness = Harness()
        harness.engine = Self.engine(budget.openAccount())
        let events = harness.feed(clientFrame(opcode: Op.binary, payload: Array(repeating: 1, count: 150_000)))
        #expect(Self.failure(events) == .messageTooBig)
        #expect(budget.inUse == 0, "the refused message's memory is given back")
    }

    @Test func theLargestHolderIsClosedToMakeRoomAndASmallClientDoesNotNotice() {
        let budget = Self.budget(limit: 1 << 20)
        let bigAccount = budget.openAccount(), smallAccount = budget.openAccount()
        let woken = Flag()
        bigAccount.onRevoke { woken.set() }
        var big = Self.engine(bigAccount), small = Self.engine(smallAccount)
        // 900 KiB of an unfinished message, then a small client's messages.
        big.receive(clientFrame(fin: false, opcode: Op.binary, payload: Array(repeating: 1, count: 900 * 1024),
                                announcedLength: 4_000_000))
        #expect(big.nextEvent() == nil)
        for _ in 0..<50 {
            small.receive(clientFrame(opcode: Op.text, payload: Array(repeating: 65, count: 4000)))
            guard case .message = small.nextEvent() else {
                Issue.record("the small client was refused")
                return
            }
        }
        // A third connection's 300 KiB push the budget over: the big one goes.
        let third = budget.openAccount()
        var other = Self.engine(third)
        other.receive(clientFrame(opcode: Op.binary, payload: Array(repeating: 2, count: 300 * 1024)))
        guard case .message = other.nextEvent() else {
            Issue.record("room was not made for the third connection")
            return
        }
        #expect(bigAccount.isRevoked && !smallAccount.isRevoked && !third.isRevoked)
        big.failIfMemoryRevoked()
        #expect(big.nextEvent() == .failed(.memoryBudgetExhausted(closeCode: .messageTooBig)))
        #expect(woken.isSet, "the big connection's driver was woken to close it")
    }

    @Test func anOutboxTheBudgetRefusesClosesWith1013() throws {
        let budget = Self.budget(limit: 10_000)
        let outbox = Outbox(limit: 1 << 20, memory: budget.openAccount())
        _ = try outbox.enqueue(.message(.binary(Array(repeating: 0, count: 6000))))
        #expect(budget.inUse == 6000)
        #expect(throws: WebSocketError.peerTooSlow) {
            _ = try outbox.enqueue(.message(.binary(Array(repeating: 0, count: 6000))))
        }
        let (entries, overflow) = outbox.takeAll()
        #expect(entries.count == 1 && overflow == .tryAgainLater)
        #expect(budget.inUse == 0, "what the owner took is no longer the budget's")
    }

    @Test func anIncompleteMessageTimesOutWith1008() {
        var engine = ServerProtocol()
        let start = MonotonicInstant.now
        let timeout: Int64 = 2_000_000_000
        engine.receive(clientFrame(fin: false, opcode: Op.text, payload: Array("drip".utf8)))
        #expect(engine.checkMessage(now: start, timeout: timeout) == start.advanced(by: timeout))
        engine.receive(clientFrame(fin: false, opcode: Op.continuation, payload: Array("drop".utf8)))
        #expect(engine.checkMessage(now: start.advanced(by: 1_999_999_999), timeout: timeout) != nil)
        #expect(engine.nextEvent() == nil)
        #expect(engine.checkMessage(now: start.advanced(by: timeout), timeout: timeout) == nil)
        #expect(engine.nextEvent() == .failed(.messageTimeout(.seconds(2))))
    }

    @Test func messagesBackToBackEachHaveTheirOwnClock() {
        // Every check falls in the middle of a message, never between two:
        // each message is still timed from its own first frame.
        var engine = ServerProtocol()
        let start = MonotonicInstant.now
        let second: Int64 = 1_000_000_000
        for step in 0..<10 {
            // The end of one message and the start of the next in one read.
            var bytes: [UInt8] = []
            if step > 0 { bytes += clientFrame(opcode: Op.continuation, payload: Array("end".utf8)) }
            bytes += clientFrame(fin: false, opcode: Op.text, payload: Array("start".utf8))
            engine.receive(bytes)
            #expect(engine.checkMessage(now: start.advanced(by: Int64(step) * second), timeout: 2 * second) != nil)
            while let event = engine.nextEvent() {
                if case .failed = event { Issue.record("a 1-second message timed out at step \(step)") }
            }
        }
    }

    @Test func aCompletedMessageStopsTheClock() {
        var engine = ServerProtocol()
        let start = MonotonicInstant.now
        engine.receive(clientFrame(fin: false, opcode: Op.text, payload: Array("a".utf8)))
        _ = engine.checkMessage(now: start, timeout: 1_000)
        engine.receive(clientFrame(opcode: Op.continuation, payload: Array("b".utf8)))
        #expect(engine.checkMessage(now: start.advanced(by: 5_000), timeout: 1_000) == nil)
        #expect(engine.nextEvent() == .message(.text("ab")))
    }
}

/// Set once from any thread.
private final class Flag: Sendable {
    private let value = Atomic(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
