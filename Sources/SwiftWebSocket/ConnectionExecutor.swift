import Synchronization

/// Runs an async handler's task on the thread that drives its parked
/// connection, inside the connection's steps: a message handed to the
/// handler is answered in the same step, with no hop to the concurrency
/// runtime's threads and back through an MPM timer (which made
/// `/echo_async` about 2.5 times slower than the event-style `/echo`).
/// The handler's code between its awaits then holds a worker as a
/// callback does, and should be as short.
///
/// A job enqueued from elsewhere (a sleep that ended, another task's
/// resumption) wakes the connection through `wake`, as a message queued for
/// it does. Once the connection has finished, jobs go to the global
/// executor: a cancelled task still runs to its end.
final class ConnectionExecutor: TaskExecutor {
    private struct State {
        var jobs: [UnownedJob] = []
        /// A step was asked for and has not run the jobs since.
        var wakePending = false
        var isRetired = false
    }

    private let state = Mutex(State())
    /// Has the connection step soon, unless the calling thread drives it
    /// (its step runs the jobs before it ends); returns whether it asked.
    private let wakeUnlessDriving: @Sendable () -> Bool

    init(wakeUnlessDriving: @escaping @Sendable () -> Bool) {
        self.wakeUnlessDriving = wakeUnlessDriving
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let (retired, wakes) = state.withLock { state in
            if !state.isRetired { state.jobs.append(job) }
            return (state.isRetired, !state.isRetired && !state.wakePending)
        }
        if retired {
            globalConcurrentExecutor.enqueue(job)
        } else if wakes, wakeUnlessDriving() {
            state.withLock { $0.wakePending = true }
        }
    }

    /// Runs the jobs queued so far (not those they queue: a task that
    /// only yields must not keep the thread); the driver's thread, in a
    /// step. Returns whether any ran.
    func runPending() -> Bool {
        let jobs = state.withLock { state in
            defer {
                state.jobs = []
                state.wakePending = false
            }
            return state.jobs
        }
        for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
        return !jobs.isEmpty
    }

    var hasPending: Bool { state.withLock { !$0.jobs.isEmpty } }

    /// The connection finished: what is queued, and every later job, runs
    /// on the global executor.
    func retire() {
        let jobs = state.withLock { state in
            state.isRetired = true
            defer { state.jobs = [] }
            return state.jobs
        }
        for job in jobs { globalConcurrentExecutor.enqueue(job) }
    }
}
