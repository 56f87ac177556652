/// How serious a line is, in Apache's levels (APLOG_*), so the shim passes
/// them through unchanged: the protocol names the level of each violation
/// it finds, the drivers above log it.
package enum LogLevel: Int32, Sendable {
    case critical = 2, error = 3, warning = 4, notice = 5, info = 6, debug = 7, trace = 8
}
