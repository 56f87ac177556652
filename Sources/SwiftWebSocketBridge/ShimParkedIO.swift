import CSwiftWebSocketABI
import SwiftWebSocket

/// `ParkedConnectionIO` over the shim: the connection's filters without
/// waiting, and the event MPM's timers. Only the holder of the connection
/// (see `DriverGate`) does I/O; timers and logs work from any thread.
final class ShimParkedIO: ParkedConnectionIO, @unchecked Sendable {
    /// Nil once the connection's pool is going (`detach`).
    private var io: UnsafeMutableRawPointer?
    /// Whom a timer wakes; weak, so a timer that fires after the connection
    /// ended finds nobody.
    weak var driver: ParkedConnection?

    init(_ io: UnsafeMutableRawPointer) {
        self.io = io
    }

    func detach() {
        io = nil
    }

    /// The shim's context, for naming the connection should a timer's step
    /// trap (onClose may run in it); nil once detached.
    func runningHandlerCode(_ body: () -> Void) {
        SwiftWebSocketBridge.runningHandlerCode(for: io, body)
    }

    private func usableIO() throws(WebSocketError) -> UnsafeMutableRawPointer {
        guard let io else { throw .closed }
        return io
    }

    var isStopping: Bool { ProcessShutdown.isStopping }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(WebSocketError) -> Int? {
        try readWithoutWaiting(usableIO(), into: buffer)
    }

    func write(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(WebSocketError) {
        let io = try usableIO()
        guard host.write_buffered(io, first.baseAddress, first.count, second.baseAddress, second.count) == 0 else {
            throw .transportFailed("write failed")
        }
    }

    func flush(waiting: Bool) throws(WebSocketError) -> Bool {
        switch host.flush(try usableIO(), waiting ? 1 : 0) {
        case 0: return false
        case 1: return true
        default: throw .transportFailed("write failed")
        }
    }

    /// Later deadlines go through the `DeadlineTicker`, which registers
    /// them with the MPM when due.
    func scheduleTimer(after delay: Duration) {
        guard delay <= .zero else {
            DeadlineTicker.shared.schedule(self, after: delay)
            return
        }
        // The MPM holds the baton until the timer fires; it keeps this
        // object (not the connection) alive till then.
        let baton = Unmanaged.passRetained(self)
        if host.schedule_timer(0, baton.toOpaque()) != 0 {
            baton.release()
            host.log_server(LogLevel.error.rawValue, "the MPM refused a timer; a parked WebSocket may miss a deadline")
        }
    }

    func shutdown() {
        guard let io else { return }
        host.shutdown(io)
    }

    func log(_ level: LogLevel, _ message: String) {
        if let io {
            host.log(io, level.rawValue, message)
        } else {
            host.log_server(level.rawValue, message)
        }
    }
}

@_cdecl("swiftws_bridge_timer_fired")
public func swiftws_bridge_timer_fired(_ baton: UnsafeMutableRawPointer) {
    Unmanaged<ShimParkedIO>.fromOpaque(baton).takeRetainedValue().driver?.timerFired()
}
