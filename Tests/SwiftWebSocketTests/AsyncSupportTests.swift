import Synchronization
import Testing
@testable import SwiftWebSocket

/// The async style's two queues without httpd: the bounded inbound queue
/// a handler takes its messages from, and the outbox's wait for room that
/// suspends an async `send`. Run under ThreadSanitizer by `make sanitize`.
@Suite(.timeLimit(.minutes(1))) struct AsyncSupportTests {
    @Test func messagesComeInOrderAndEndWithTheConnection() async throws {
        let inbound = InboundMessages()
        inbound.push(.text("one"))
        inbound.push(.text("two"))
        inbound.finish()
        inbound.push(.text("after the close"))
        #expect(try await inbound.next() == .text("one"))
        #expect(try await inbound.next() == .text("two"))
        #expect(try await inbound.next() == nil)
    }

    @Test func aWaitingHandlerGetsTheNextMessageFromAnotherThread() async throws {
        let inbound = InboundMessages()
        async let taken = inbound.next()
        try await Task.sleep(for: .milliseconds(20))
        inbound.push(.binary([1, 2, 3]))
        #expect(try await taken == .binary([1, 2, 3]))
    }

    @Test func theQueueRefusesInputOnceFullAndAcceptsItAgainAsItIsTaken() async throws {
        let inbound = InboundMessages()
        for index in 0..<InboundMessages.pauseAtMessages {
            #expect(inbound.hasRoom)
            inbound.push(.text("\(index)"))
        }
        #expect(!inbound.hasRoom)
        _ = try await inbound.next()
        #expect(inbound.hasRoom)
        let large = InboundMessages()
        large.push(.binary([UInt8](repeating: 0, count: InboundMessages.pauseAtBytes)))
        #expect(!large.hasRoom, "bytes bound it as well as messages")
        large.handlerEnded()
        #expect(large.hasRoom, "a handler that ended never pauses its connection")
    }

    @Test func cancellingAWaitingHandlerThrowsCancellationError() async {
        let inbound = InboundMessages()
        let waiting = Task { try await inbound.next() }
        try? await Task.sleep(for: .milliseconds(20))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
    }

    @Test func aSenderWaitsAboveTheHighWaterMarkUntilTheOwnerTakesTheQueue() async throws {
        let outbox = Outbox(limit: 100)
        _ = try outbox.enqueue(.message(.binary([UInt8](repeating: 0, count: 60))))
        let resumed = Atomic(false)
        let sender = Task {
            await outbox.waitForRoomToSend()
            resumed.store(true, ordering: .releasing)
        }
        try await Task.sleep(for: .milliseconds(50))
        let early = resumed.load(ordering: .acquiring)
        #expect(!early, "60 of 100 bytes queued: over half")
        _ = outbox.takeAll()
        await sender.value
        let late = resumed.load(ordering: .acquiring)
        #expect(late)
    }

    @Test func closingTheOutboxReleasesWaitingSenders() async throws {
        let outbox = Outbox(limit: 100)
        _ = try outbox.enqueue(.message(.binary([UInt8](repeating: 0, count: 60))))
        let sender = Task { await outbox.waitForRoomToSend() }
        try await Task.sleep(for: .milliseconds(20))
        outbox.close()
        await sender.value
        #expect(!outbox.isOpen)
    }

    @Test func manyHandlersAndDriversCrossWithoutLosingAMessage() async throws {
        let inbound = InboundMessages()
        let count = 2000
        let driver = Task.detached {
            for index in 0..<count {
                while !inbound.hasRoom { await Task.yield() }
                inbound.push(.text("\(index)"))
            }
            inbound.finish()
        }
        var received: [Message] = []
        while let message = try await inbound.next() { received.append(message) }
        await driver.value
        #expect(received == (0..<count).map { .text("\($0)") })
    }

    /// What an async handler queues, kept for the test to answer: the
    /// drivers' outbox path is covered against httpd (test_async.py).
    final class QueuedItems: MessageTransport {
        let items = Mutex<[Outbox.Item]>([])
        var isOpen: Bool { true }
        func send(_ message: Message) throws { items.withLock { $0.append(.message(message)) } }
        func send(_ shared: SharedMessage) throws {}
        func requestClose(code: CloseCode, reason: String) {}
        func waitForRoomToSend() async {}
        func queue(_ item: Outbox.Item) throws { items.withLock { $0.append(item) } }
        func waitForRoomToStream() async {}

        var pingPayloads: [[UInt8]] {
            items.withLock { items in items.compactMap { if case .ping(let payload) = $0 { payload } else { nil } } }
        }
    }

    static func connection(_ transport: QueuedItems) -> WebSocketConnection {
        WebSocketConnection(request: UpgradeRequest(resource: "/ping"), subprotocol: nil, transport: transport,
                            closeTimeout: .seconds(1), handlerExecutor: nil)
    }

    @Test func aPongAnswersItsPingAndEveryEarlierOneWhileOthersPongsAreIgnored() async throws {
        let transport = QueuedItems()
        let connection = Self.connection(transport)
        let pings = PendingPings()
        let first = Task { try await pings.ping(through: connection) }
        while transport.pingPayloads.count < 1 { try await Task.sleep(for: .milliseconds(1)) }
        let second = Task { try await pings.ping(through: connection) }
        while transport.pingPayloads.count < 2 { try await Task.sleep(for: .milliseconds(1)) }
        try await Task.sleep(for: .milliseconds(30))
        pings.pongArrived(Array("the client's own".utf8))
        pings.pongArrived(transport.pingPayloads[1])
        let (firstTrip, secondTrip) = (try await first.value, try await second.value)
        #expect(firstTrip >= .milliseconds(30) && secondTrip >= .milliseconds(30))
        #expect(firstTrip < .seconds(5) && secondTrip <= firstTrip)
    }

    @Test func pingsStillWaitingThrowWhenTheConnectionClosesAndLaterOnesAtOnce() async throws {
        let transport = QueuedItems()
        let pings = PendingPings()
        let waiting = Task { try await pings.ping(through: Self.connection(transport)) }
        while transport.pingPayloads.isEmpty { try await Task.sleep(for: .milliseconds(1)) }
        pings.connectionClosed()
        await #expect(throws: WebSocketError.closed) { try await waiting.value }
        await #expect(throws: WebSocketError.closed) { try await pings.ping(through: Self.connection(transport)) }
    }
}
