import Glibc

/// A thread of its own for a test's body, as httpd's other threads would
/// be: started at once, joined when the test wants its outcome.
final class SpawnedThread {
    private final class Box {
        let body: () throws -> Void
        var error: (any Error)?
        init(_ body: @escaping () throws -> Void) { self.body = body }
    }

    private let box: Box
    private var thread = pthread_t()

    init(_ body: @escaping () throws -> Void) {
        box = Box(body)
        let raw = Unmanaged.passRetained(box).toOpaque()
        pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            do { try box.body() } catch { box.error = error }
            return nil
        }, raw)
    }

    /// Waits for the body to end; throws what it threw.
    func join() throws {
        pthread_join(thread, nil)
        if let error = box.error { throw error }
    }
}

/// Runs `body` on a new thread and waits for it.
func onAnotherThread(_ body: @escaping () throws -> Void) throws {
    try SpawnedThread(body).join()
}
