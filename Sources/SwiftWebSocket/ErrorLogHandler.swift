// Handlers log with swift-log's `Logger` (`socket.logger`, `request.logger`)
// without importing anything but SwiftWebSocket.
@_exported import Logging

/// swift-log's `LogHandler` over Apache's error log: a line logged at a
/// level the configuration keeps (`LogLevel swiftwebsocket:debug`) lands in
/// the error log against the request, with its log id.
struct ErrorLogHandler: LogHandler {
    let io: any ConnectionIO
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level

    init(io: any ConnectionIO) {
        self.io = io
        self.logLevel = Self.loggerLevel(io.logLevel)
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var line = event.message.description
        if let error = event.error { line += ": \(error)" }
        let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
        for (key, value) in all.sorted(by: { $0.key < $1.key }) {
            line += " \(key)=\(value)"
        }
        io.log(Self.apacheLevel(event.level), line)
    }

    /// swift-log's levels and Apache's, one to one.
    private static let levels: [(Logger.Level, LogLevel)] = [
        (.trace, .trace), (.debug, .debug), (.info, .info), (.notice, .notice),
        (.warning, .warning), (.error, .error), (.critical, .critical),
    ]

    static func apacheLevel(_ level: Logger.Level) -> LogLevel {
        levels.first { $0.0 == level }?.1 ?? .error
    }

    static func loggerLevel(_ level: LogLevel) -> Logger.Level {
        levels.first { $0.1 == level }?.0 ?? .info
    }
}

extension Logger {
    /// The logger for one connection, at the level Apache keeps for it.
    package static func errorLog(_ io: any ConnectionIO) -> Logger {
        Logger(label: "swiftwebsocket") { _ in ErrorLogHandler(io: io) }
    }

    /// A logger that drops everything, for requests made outside httpd.
    static let discarding = Logger(label: "swiftwebsocket") { _ in SwiftLogNoOpLogHandler() }
}
