import Testing
@testable import SwiftWebSocket

/// The deadlines both drivers act on, with a clock that is only numbers.
struct ConnectionDeadlinesTests {
    static func at(seconds: Double) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: Int64(seconds * 1e9))
    }

    static let keepalive = Keepalive(pingInterval: .seconds(20), pingTimeout: .seconds(5),
                                     idleTimeout: .seconds(60), closeTimeout: .seconds(10))

    @Test func aQuietPeerIsPingedThenGivenUpOnUnlessItAnswers() {
        var deadlines = ConnectionDeadlines(Self.keepalive, now: Self.at(seconds: 0))
        #expect(deadlines.due(at: Self.at(seconds: 19.9)) == .none)
        #expect(deadlines.next(messageDue: nil) == Self.at(seconds: 20))
        #expect(deadlines.due(at: Self.at(seconds: 20)) == .keepalivePing)
        deadlines.keepalivePingSent(at: Self.at(seconds: 20))
        #expect(deadlines.next(messageDue: nil) == Self.at(seconds: 25))
        #expect(deadlines.due(at: Self.at(seconds: 25)) == .peerGone)
        // Any input answers the ping and restarts the interval.
        deadlines.heard(at: Self.at(seconds: 24))
        #expect(deadlines.due(at: Self.at(seconds: 25)) == .none)
        #expect(deadlines.next(messageDue: nil) == Self.at(seconds: 44))
    }

    @Test func pingsDoNotKeepAConnectionWithoutMessagesFromIdling() {
        var deadlines = ConnectionDeadlines(Self.keepalive, now: Self.at(seconds: 0))
        for second in stride(from: 10.0, through: 50, by: 10) { deadlines.heard(at: Self.at(seconds: second)) }
        #expect(deadlines.due(at: Self.at(seconds: 60)) == .idle)
        // A message sent restarts it; one received counts from its bytes.
        deadlines.messageSent(at: Self.at(seconds: 55))
        #expect(deadlines.due(at: Self.at(seconds: 60)) == .none)
        deadlines.heard(at: Self.at(seconds: 70))
        deadlines.messageReceived()
        #expect(deadlines.next(messageDue: nil) == Self.at(seconds: 90), "the ping first")
        for second in [85.0, 105, 125] { deadlines.heard(at: Self.at(seconds: second)) }
        #expect(deadlines.due(at: Self.at(seconds: 129)) == .none)
        #expect(deadlines.due(at: Self.at(seconds: 130)) == .idle)
    }

    @Test func onceOurCloseIsOutOnlyItsTimeoutCounts() {
        var deadlines = ConnectionDeadlines(Self.keepalive, now: Self.at(seconds: 0))
        deadlines.keepalivePingSent(at: Self.at(seconds: 20))
        deadlines.closeSent(at: Self.at(seconds: 21))
        #expect(deadlines.due(at: Self.at(seconds: 30)) == .none, "the ping's timeout no longer counts")
        #expect(deadlines.next(messageDue: Self.at(seconds: 22)) == Self.at(seconds: 31))
        #expect(deadlines.due(at: Self.at(seconds: 31)) == .closeTimedOut)
    }

    @Test func theMessageTimeoutIsTheNextDeadlineWhenItIsEarliest() {
        let deadlines = ConnectionDeadlines(Self.keepalive, now: Self.at(seconds: 0))
        #expect(deadlines.next(messageDue: Self.at(seconds: 3)) == Self.at(seconds: 3))
        #expect(deadlines.next(messageDue: Self.at(seconds: 30)) == Self.at(seconds: 20))
    }

    @Test func withoutPingsOrIdleTimeoutNothingIsDue() {
        let deadlines = ConnectionDeadlines(Keepalive(pingInterval: nil), now: Self.at(seconds: 0))
        #expect(deadlines.due(at: Self.at(seconds: 1e6)) == .none)
        #expect(deadlines.next(messageDue: nil) == nil)
        #expect(!deadlines.watchesSentMessages)
    }

    @Test func deadlinesTooFarToRepresentAreNeverReached() {
        let deadlines = ConnectionDeadlines(Keepalive(pingInterval: .seconds(Int64.max)), now: Self.at(seconds: 1))
        #expect(deadlines.due(at: MonotonicInstant(nanoseconds: .max - 1)) == .none)
    }
}
