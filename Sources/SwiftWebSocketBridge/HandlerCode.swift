import CSwiftWebSocketABI

/// Runs `body`, which calls handler code, with its connection named on this
/// thread: should the handler trap, the shim's report (trap_report.c) says
/// whose code it was. `io` nil (the connection's pool is gone): unnamed.
func runningHandlerCode<T, E: Error>(for io: UnsafeMutableRawPointer?, _ body: () throws(E) -> T) throws(E) -> T {
    guard let io else { return try body() }
    let previous = host.handler_enter(io)
    defer { host.handler_leave(previous) }
    return try body()
}
