/// `SwiftWebSocketSlowCallback`: handler code that keeps its thread longer
/// than this is named in a warning when it gives the thread back, once per
/// occurrence. A warning, not a kill: Swift code cannot be interrupted, and
/// a callback that never returns is found by the absence of its warning
/// together with httpd's server-status. While a callback runs its
/// connection takes no input, and on the event MPM it holds one of the
/// process's workers.
package struct SlowCallWatch: Sendable {
    package static let defaultThreshold: Duration = .seconds(1)

    /// Nil: never warns.
    package let threshold: Duration?
    let thresholdNanoseconds: Int64?
    /// The resource served and the handler type, as the warnings name them
    /// (the client and the log id are in the error log's line prefix).
    let resource: String
    let handlerName: String

    package init(threshold: Duration? = SlowCallWatch.defaultThreshold, resource: String = "",
                 handlerName: String = "handler") {
        self.threshold = threshold
        self.thresholdNanoseconds = threshold?.clampedNanoseconds
        self.resource = resource
        self.handlerName = handlerName
    }

    var isOn: Bool { thresholdNanoseconds != nil }

    /// Runs `body`, the handler's `what` ("onMessage"), and warns through
    /// `log` if it held the thread too long.
    package func timing<T, E: Error>(_ what: StaticString, log: (LogLevel, String) -> Void,
                             _ body: () throws(E) -> T) throws(E) -> T {
        guard isOn else { return try body() }
        let started = MonotonicInstant.now
        defer { check(since: started, what, log: log) }
        return try body()
    }

    /// Warns if handler code (`what`) that has had the thread since
    /// `started` held it too long.
    func check(since started: MonotonicInstant, _ what: StaticString, log: (LogLevel, String) -> Void) {
        guard let thresholdNanoseconds, let threshold else { return }
        let held = MonotonicInstant.now.nanoseconds &- started.nanoseconds
        guard held > thresholdNanoseconds else { return }
        let served = resource.isEmpty ? "" : "\(resource): "
        log(.warning, "\(served)\(handlerName).\(what) held its thread for \(held / 1_000_000) ms (SwiftWebSocketSlowCallback "
            + "\(threshold)); the connection took no input meanwhile")
    }
}
