import Testing
@testable import SwiftWebSocket

/// The receive loop's clock: deadlines far away saturate instead of
/// trapping on overflow (a handler may configure "practically never").
@Suite struct MonotonicInstantTests {
    @Test func arithmeticMatchesDurations() {
        let start = MonotonicInstant(nanoseconds: 5_000_000_000)
        let later = start.advanced(by: Duration.milliseconds(1500).clampedNanoseconds)
        #expect(later.nanoseconds == 6_500_000_000)
        #expect(later - start == .milliseconds(1500))
        #expect(start - later == .milliseconds(-1500))
        #expect(start < start.advanced(by: 1))
    }

    @Test func farDeadlinesSaturate() {
        #expect(Duration.seconds(Int64.max).clampedNanoseconds == .max)
        #expect(Duration.seconds(Int64.min).clampedNanoseconds == .min)
        #expect(MonotonicInstant.now.advanced(by: .max).nanoseconds == .max)
        #expect(MonotonicInstant(nanoseconds: -1).advanced(by: .min).nanoseconds == .min)
        #expect(MonotonicInstant(nanoseconds: .max) - MonotonicInstant(nanoseconds: -1) == .nanoseconds(Int64.max))
    }
}
