#if canImport(Glibc)
import Glibc
#endif
import SwiftWebSocket

/// Keeps the parked connections' deadlines (keepalive pings, timeouts) and
/// hands each to the MPM as a timer due at once when it passes.
///
/// Why not `ap_mpm_register_timed_callback` with the delay: httpd 2.4's
/// event MPM (event.c, listener_thread) derives its poll timeout from the
/// timer list only when a timer has already expired, so a timer registered
/// for later waits until something else wakes the listener (up to
/// `Timeout`). Timers due at once are always run: registering one wakes the
/// listener. One thread per child process, started in child_init (after
/// the fork, and before any baseline of the child's threads is taken); it
/// only sleeps and registers.
final class DeadlineTicker: @unchecked Sendable {
    static let shared = DeadlineTicker()

    private struct Entry {
        var due: UInt64
        var connection: ShimParkedIO
    }

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let changed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// A binary min-heap on `due`.
    private var heap: [Entry] = []
    private var started = false

    private init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(changed, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// Has `connection.scheduleTimer(after: .zero)` called once `delay` passed.
    func schedule(_ connection: ShimParkedIO, after delay: Duration) {
        let (seconds, attoseconds) = delay.components
        let nanoseconds = UInt64(max(0, seconds)) &* 1_000_000_000 &+ UInt64(max(0, attoseconds / 1_000_000_000))
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if !started { started = startThread() }  // child_init's attempt failed
        push(Entry(due: Self.now() &+ nanoseconds, connection: connection))
        if heap[0].connection === connection { pthread_cond_signal(changed) }
    }

    func start() {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if !started { started = startThread() }
    }

    private func startThread() -> Bool {
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { argument in
            Unmanaged<DeadlineTicker>.fromOpaque(argument!).takeUnretainedValue().run()  // never returns
        }, Unmanaged.passUnretained(self).toOpaque())
        if started != 0 {
            host.log_server(LogLevel.error.rawValue, "could not start the WebSocket deadline thread; "
                            + "parked connections miss keepalive pings and timeouts")
            return false
        }
        pthread_detach(thread)
        return true
    }

    private func run() -> Never {
        pthread_mutex_lock(mutex)
        while true {
            guard let first = heap.first else {
                pthread_cond_wait(changed, mutex)
                continue
            }
            let now = Self.now()
            if first.due > now {
                var until = timespec(tv_sec: Int(first.due / 1_000_000_000), tv_nsec: Int(first.due % 1_000_000_000))
                pthread_cond_timedwait(changed, mutex, &until)
                continue
            }
            var due: [ShimParkedIO] = []
            while let top = heap.first, top.due <= now { due.append(pop().connection) }
            pthread_mutex_unlock(mutex)
            for connection in due { connection.scheduleTimer(after: .zero) }
            pthread_mutex_lock(mutex)
        }
    }

    private func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].due < heap[parent].due else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private func pop() -> Entry {
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].due < heap[smallest].due { smallest = left }
            if right < heap.count && heap[right].due < heap[smallest].due { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}

@_cdecl("swiftws_bridge_child_init")
public func swiftws_bridge_child_init() {
    DeadlineTicker.shared.start()
}
