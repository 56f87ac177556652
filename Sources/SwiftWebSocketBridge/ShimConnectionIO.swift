#if canImport(Glibc)
import Glibc
#endif
import CEventFD
import CSwiftWebSocketABI
import SwiftWebSocket
import Synchronization

/// `ConnectionIO` over the shim's callbacks: reads, waits and writes go
/// through the connection's filters, log lines to the error log with the
/// request's log id. Another thread wakes the owner through an eventfd.
///
/// The shim's context lives in the request pool and its filters are not
/// thread-safe, so I/O is refused from any thread but the one that opened
/// the connection, and after `detach()` (a handler may keep its `WebSocket`
/// past `transferData`). `wake` and `log` work from anywhere, any time.
final class ShimConnectionIO: ConnectionIO, @unchecked Sendable {
    /// Written only by the owner; other threads look at it in `log` alone,
    /// and only to learn whether they are the owner.
    private var io: UnsafeMutableRawPointer?
    private let owner = pthread_self()
    /// An eventfd, readable while a wake-up is pending; -1 once the request
    /// ended, or if none could be made (then queued messages wait for the
    /// owner's next read or send). Locked, so a late `wake` never writes
    /// to a descriptor closed and reused meanwhile.
    private let wakeDescriptor: Mutex<Int32>
    /// For a connection that parks, whose callbacks run on whichever
    /// worker the MPM picks: the context they log through, until `detach`
    /// (locked, so a line being logged holds the pool alive), as its
    /// address; 0 once detached.
    private let parkedLog: Mutex<UInt>?
    let logLevel: LogLevel

    /// `wakeable`: make the eventfd that other threads wake the owner
    /// through; a connection that will park needs none (and 10,000 of them
    /// would double its descriptors).
    init(_ io: UnsafeMutableRawPointer, wakeable: Bool = true) {
        self.io = io
        let descriptor = wakeable ? eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) : -1
        self.wakeDescriptor = Mutex(descriptor)
        self.parkedLog = wakeable ? nil : Mutex(UInt(bitPattern: io))
        self.logLevel = LogLevel(apacheLevel: host.log_level(io))
        if descriptor >= 0 { ProcessShutdown.register(descriptor) }
    }

    /// A handshake refused never reaches `detach`.
    deinit {
        closeWakeDescriptor()
    }

    var isStopping: Bool { ProcessShutdown.isStopping }

    /// Called when the request ends: every later call fails or is dropped,
    /// and the eventfd is closed (a `WebSocket` kept by other threads
    /// must not hold a descriptor).
    func detach() {
        io = nil
        parkedLog?.withLock { $0 = 0 }
        closeWakeDescriptor()
    }

    private func closeWakeDescriptor() {
        wakeDescriptor.withLock { descriptor in
            guard descriptor >= 0 else { return }
            ProcessShutdown.unregister(descriptor)
            close(descriptor)
            descriptor = -1
        }
    }

    private var onOwnerThread: Bool { pthread_equal(owner, pthread_self()) != 0 }

    func checkAccess() throws(WebSocketError) {
        guard onOwnerThread else { throw .wrongThread }
        guard io != nil else { throw .closed }
    }

    /// The thread was checked by `WebSocket` on entry (`checkAccess`).
    private func usableIO() throws(WebSocketError) -> UnsafeMutableRawPointer {
        guard let io else { throw .closed }
        return io
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(WebSocketError) -> Int? {
        try readWithoutWaiting(usableIO(), into: buffer)
    }

    func wait(timeout: Duration?) throws(WebSocketError) {
        let milliseconds = timeout.map { Self.milliseconds(rounding: $0) } ?? -1
        // Only the owner closes the descriptor (in detach), so it stays
        // valid for this call.
        let descriptor = wakeDescriptor.withLock { $0 }
        switch host.wait(try usableIO(), descriptor, milliseconds) {
        case Int32(SWIFTWS_WAIT_READABLE), Int32(SWIFTWS_WAIT_TIMEOUT):
            return
        case Int32(SWIFTWS_WAIT_WOKEN):
            var counter: eventfd_t = 0
            _ = eventfd_read(descriptor, &counter)
        default:
            throw .transportFailed("waiting for input failed")
        }
    }

    func wake() {
        wakeDescriptor.withLock { descriptor in
            guard descriptor >= 0 else { return }
            _ = eventfd_write(descriptor, 1)
        }
    }

    func write(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(WebSocketError) {
        let io = try usableIO()
        guard host.write(io, first.baseAddress, first.count, second.baseAddress, second.count) == 0 else {
            throw .transportFailed("write failed")
        }
    }

    /// Against the connection (its client and the handshake's log id) on
    /// the owner's thread, and from any thread for a parked connection;
    /// elsewhere, and once detached, against the server.
    func log(_ level: LogLevel, _ message: String) {
        if onOwnerThread, let io {
            host.log(io, level.rawValue, message)
            return
        }
        let logged = parkedLog?.withLock { address -> Bool in
            guard let io = UnsafeMutableRawPointer(bitPattern: address) else { return false }
            host.log(io, level.rawValue, message)
            return true
        } ?? false
        if !logged { host.log_server(level.rawValue, message) }
    }

    func addResponseHeader(name: String, value: String) {
        guard let io else { return }
        host.add_response_header(io, name, value)
    }

    /// Whole milliseconds, rounded up so a deadline is never woken early.
    private static func milliseconds(rounding duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return 0 }
        let whole = seconds.multipliedReportingOverflow(by: 1000)
        if whole.overflow { return Int.max }
        return Int(whole.partialValue) + Int((attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    }
}

extension LogLevel {
    /// APLOG_* as httpd reports it: 0 emerg ... 7 debug, 8-15 trace1-8.
    init(apacheLevel: Int32) {
        switch apacheLevel {
        case ...2: self = .critical
        case 8...: self = .trace
        default: self = LogLevel(rawValue: apacheLevel) ?? .info
        }
    }
}
