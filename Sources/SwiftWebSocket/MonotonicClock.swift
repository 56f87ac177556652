import Glibc

extension MonotonicInstant {
    /// The monotonic clock now: the drivers read it and hand the instant to
    /// the protocol and the deadlines, which never read it themselves.
    static var now: MonotonicInstant {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return MonotonicInstant(nanoseconds: Int64(time.tv_sec) &* 1_000_000_000 &+ Int64(time.tv_nsec))
    }
}
