import Testing
@testable import SwiftWebSocket

/// The receive loop's clock: deadlines far away saturate instead of
/// trapping on overflow (a handler may configure "practically never").
@Suite struct MonotonicInstantTests {
    @Test func arithmeticMatchesDurations() {
        let start = MonotonicInstant(nanoseconds: 5_000_000_000)
        #expect((start + .milliseconds(1500)).nanoseconds == 6_500_000_000)
        #expect((start + .milliseconds(1500)) - start == .milliseconds(1500))
        #expect(start - (start + .seconds(2)) == .seconds(-2))
        #expect(start < start + .nanoseconds(1))
    }

    @Test func farDeadlinesSaturate() {
        let now = MonotonicInstant.now
        #expect((now + .seconds(Int64.max)).nanoseconds == .max)
        #expect((MonotonicInstant(nanoseconds: -1) + .seconds(Int64.min)).nanoseconds == .min)
        #expect(MonotonicInstant(nanoseconds: .max) - MonotonicInstant(nanoseconds: -1) == .nanoseconds(Int64.max))
    }

    @Test func followsTheClock() {
        let earlier = MonotonicInstant.now
        #expect(MonotonicInstant.now >= earlier)
    }
}
