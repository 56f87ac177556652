import CEventFD
import Synchronization

/// Closing every WebSocket when httpd stops this child gracefully (restart,
/// graceful-stop, MaxConnectionsPerChild, fewer processes wanted): without
/// it an open connection keeps the child alive for as long as the client
/// likes. The shim's child_stopping hook calls
/// `swiftws_bridge_child_stopping`; each connection's thread is woken
/// through its eventfd, each parked connection by a timer, and sees
/// `isStopping` and closes with 1001.
enum ProcessShutdown {
    private static let stopping = Atomic<Bool>(false)
    /// The wake descriptors of the connections open in this process.
    private static let wakeDescriptors = Mutex<Set<Int32>>([])
    /// The parked connections open in this process.
    private static let parked = Mutex<[ObjectIdentifier: ShimParkedIO]>([:])

    static var isStopping: Bool { stopping.load(ordering: .acquiring) }

    static func register(_ descriptor: Int32) {
        wakeDescriptors.withLock { _ = $0.insert(descriptor) }
    }

    /// Call before closing `descriptor`, so a stop never writes to a
    /// descriptor that was closed (and maybe reused).
    static func unregister(_ descriptor: Int32) {
        wakeDescriptors.withLock { _ = $0.remove(descriptor) }
    }

    static func register(_ connection: ShimParkedIO) {
        parked.withLock { $0[ObjectIdentifier(connection)] = connection }
    }

    static func unregister(_ connection: ShimParkedIO) {
        _ = parked.withLock { $0.removeValue(forKey: ObjectIdentifier(connection)) }
    }

    static func stop() {
        stopping.store(true, ordering: .releasing)
        wakeDescriptors.withLock { descriptors in
            for descriptor in descriptors { _ = eventfd_write(descriptor, 1) }
        }
        for connection in parked.withLock({ Array($0.values) }) { connection.scheduleTimer(after: .zero) }
    }
}

@_cdecl("swiftws_bridge_child_stopping")
public func swiftws_bridge_child_stopping() {
    ProcessShutdown.stop()
}
