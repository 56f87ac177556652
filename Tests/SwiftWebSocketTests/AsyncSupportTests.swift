import Synchronization
import Testing
@testable import SwiftWebSocket

/// The async style's two queues without httpd: the bounded inbound queue
/// a handler takes its messages from, and the outbox's wait for room that
/// suspends an async `send`. Run under ThreadSanitizer by `make sanitize`.
@Suite struct AsyncSupportTests {
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
}
