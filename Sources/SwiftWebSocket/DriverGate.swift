#if canImport(Glibc)
import Glibc
#endif

/// Who may drive a parked connection. httpd's event MPM owns it while a
/// worker runs its hooks (from `resume_connection` to `suspend_connection`);
/// in between it waits in the MPM's pollset, and a timer (a keepalive
/// deadline, or another thread's message) may take it for a moment. The
/// filters are not thread-safe, so never both: the MPM's `reclaim` waits for
/// a timer's turn to end. A condition variable, not a spin: a timer's turn
/// may wait for the socket (a message over FlushMaxThreshold).
final class DriverGate: @unchecked Sendable {
    private enum Holder { case mpm, parked, timer }

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let released = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// The MPM holds the connection from the start: the content handler
    /// runs on its worker.
    private var holder = Holder.mpm
    /// A timer fired while the connection was held: its holder looks again.
    private var timerMissed = false

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(released, nil)
    }

    deinit {
        pthread_cond_destroy(released)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        released.deallocate()
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// The MPM parks the connection. Returns whether a timer fired while
    /// the MPM held it, so one must be scheduled again.
    func park() -> Bool {
        locked {
            holder = .parked
            defer { timerMissed = false }
            return timerMissed
        }
    }

    /// The MPM takes the connection back, waiting for a timer's turn.
    func reclaim() {
        locked {
            while holder == .timer { pthread_cond_wait(released, mutex) }
            holder = .mpm
        }
    }

    /// A timer takes the parked connection; false if someone holds it (who
    /// then looks again before letting go).
    func takeForTimer() -> Bool {
        locked {
            guard holder == .parked else {
                timerMissed = true
                return false
            }
            holder = .timer
            return true
        }
    }

    /// A timer's turn ends; false, keeping it, if another timer fired
    /// meanwhile and it must look again.
    func releaseFromTimer() -> Bool {
        locked {
            if timerMissed {
                timerMissed = false
                return false
            }
            holder = .parked
            pthread_cond_broadcast(released)
            return true
        }
    }
}
