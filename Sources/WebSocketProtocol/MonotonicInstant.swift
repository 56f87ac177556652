/// A point on the monotonic clock, in nanoseconds: what the receive loop
/// keeps its deadlines in (last input, keepalive ping, close sent). The
/// protocol is given instants and never reads the clock; the drivers do
/// (`MonotonicInstant.now`, in the library above).
///
/// Not `ContinuousClock.Instant`: that is a resilient type of the
/// Concurrency library, so every copy and comparison of an optional one
/// goes through value witnesses. The loop reads the clock and checks its
/// deadlines on every pass, and callgrind put that at about 1,000
/// instructions per echoed message; with a plain integer it is a few dozen.
package struct MonotonicInstant: Comparable, Sendable {
    package let nanoseconds: Int64

    package init(nanoseconds: Int64) {
        self.nanoseconds = nanoseconds
    }

    package static func < (a: MonotonicInstant, b: MonotonicInstant) -> Bool {
        a.nanoseconds < b.nanoseconds
    }

    /// Saturates: a deadline too far away to represent is never reached.
    /// In nanoseconds, not a `Duration`: converting one divides 128-bit
    /// attoseconds, and the loop adds intervals on every pass
    /// (`Keepalive.Nanoseconds` converts them once).
    package func advanced(by nanoseconds: Int64) -> MonotonicInstant {
        let (sum, overflow) = self.nanoseconds.addingReportingOverflow(nanoseconds)
        guard !overflow else { return MonotonicInstant(nanoseconds: nanoseconds < 0 ? .min : .max) }
        return MonotonicInstant(nanoseconds: sum)
    }

    package static func - (later: MonotonicInstant, earlier: MonotonicInstant) -> Duration {
        let (difference, overflow) = later.nanoseconds.subtractingReportingOverflow(earlier.nanoseconds)
        guard !overflow else { return later > earlier ? .nanoseconds(Int64.max) : .nanoseconds(Int64.min) }
        return .nanoseconds(difference)
    }
}

extension Duration {
    /// Whole nanoseconds, clamped to Int64's range.
    package var clampedNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return seconds < 0 ? .min : .max }
        let (sum, overflowAgain) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        guard !overflowAgain else { return whole < 0 ? .min : .max }
        return sum
    }
}
