import CSwiftWebSocketABI
import SwiftWebSocket

/// One connection's handler instance from extra handshake to close. The shim
/// holds it as an opaque pointer between `swiftws_session_open` and
/// `swiftws_session_free`.
final class Session {
    private var handler: any WebSocketEndpoint
    private let handlerName: String
    private let request: UpgradeRequest
    private let limits: Limits
    private let keepalive: Keepalive
    private let slowCalls: SlowCallWatch
    private var compression: PerMessageDeflate?
    /// The handshake's I/O (headers, log), and a held thread's.
    private let io: ShimConnectionIO
    /// The shim's context for the connection, valid until the session is freed.
    let shimIO: UnsafeMutableRawPointer
    private var subprotocol: String?
    /// Set when the connection parks in the MPM.
    private let parkedIO: ShimParkedIO?
    private var parked: ParkedConnection?
    private let meter: ShimTrafficMeter

    /// Why the handshake did not go through: the HTTP status to answer.
    struct Refused: Error { var status: Int32 }

    init(type: HandlerType, request: UnsafePointer<swiftws_request>, io: UnsafeMutableRawPointer,
         parking: Bool) throws(Refused) {
        self.handler = type.makeHandler()
        self.handlerName = type.name
        self.shimIO = io
        self.io = ShimConnectionIO(io, wakeable: !parking)
        self.parkedIO = parking ? ShimParkedIO(io) : nil
        self.meter = ShimTrafficMeter(request.pointee.traffic)
        self.request = Self.upgradeRequest(from: request.pointee, logger: .errorLog(self.io))
        let options = request.pointee.options
        self.limits = Self.limits(from: options)
        self.keepalive = Self.keepalive(from: options)
        self.slowCalls = SlowCallWatch(threshold: Self.slowCallThreshold(from: options), resource: self.request.resource,
                                       handlerName: type.name)
        try runExtraHandshake(configuredCompression: Self.deflateOptions(from: options))
    }

    private func runExtraHandshake(configuredCompression: DeflateOptions) throws(Refused) {
        var response = UpgradeResponse(compression: configuredCompression)
        do {
            try handler.extraHandshake(request, response: &response)
        } catch let rejection as HandshakeRejection {
            io.log(.info, "\(handlerName) rejected the handshake with \(rejection.status)")
            try addResponseHeaders(rejection.headers)
            let valid = (400...599).contains(rejection.status)
            if !valid { io.log(.error, "\(handlerName): HandshakeRejection status \(rejection.status) is not 4xx/5xx; answering 500") }
            throw Refused(status: valid ? Int32(rejection.status) : 500)
        } catch {
            io.log(.error, "\(handlerName).extraHandshake threw: \(error)")
            throw Refused(status: 500)
        }
        if let chosen = response.subprotocol, !request.requestedSubprotocols.contains(chosen) {
            io.log(.error, "\(handlerName) chose subprotocol \"\(chosen)\", which the client did not offer")
            throw Refused(status: 500)
        }
        try addResponseHeaders(response.headers)
        if let chosen = response.subprotocol {
            subprotocol = chosen
            io.addResponseHeader(name: "Sec-WebSocket-Protocol", value: chosen)
        }
        // httpd joins repeated header lines into one, comma-separated.
        if let (agreed, header) = response.compression.negotiate(request.header("Sec-WebSocket-Extensions")) {
            compression = agreed
            io.addResponseHeader(name: "Sec-WebSocket-Extensions", value: header)
        }
    }

    // The directives' values (swiftws_connection_options): -1 where unset,
    // for the engine's default; durations in milliseconds, 0 for off.

    private static func limits(from raw: swiftws_connection_options) -> Limits {
        var limits = Limits()
        if raw.max_message_size > 0 { limits.maxMessageSize = Int(clamping: raw.max_message_size) }
        if raw.max_frame_size > 0 { limits.maxFrameSize = Int(clamping: raw.max_frame_size) }
        if raw.max_fragments > 0 { limits.maxFragmentsPerMessage = Int(clamping: raw.max_fragments) }
        if raw.outbox_size > 0 { limits.maxQueuedBytes = Int(clamping: raw.outbox_size) }
        return limits
    }

    private static func keepalive(from raw: swiftws_connection_options) -> Keepalive {
        var keepalive = Keepalive()
        if raw.ping_interval_ms >= 0 {
            keepalive.pingInterval = raw.ping_interval_ms == 0 ? nil : .milliseconds(raw.ping_interval_ms)
        }
        if raw.ping_timeout_ms > 0 { keepalive.pingTimeout = .milliseconds(raw.ping_timeout_ms) }
        if raw.idle_timeout_ms >= 0 {
            keepalive.idleTimeout = raw.idle_timeout_ms == 0 ? nil : .milliseconds(raw.idle_timeout_ms)
        }
        if raw.close_timeout_ms > 0 { keepalive.closeTimeout = .milliseconds(raw.close_timeout_ms) }
        if raw.message_timeout_ms >= 0 {
            keepalive.messageTimeout = raw.message_timeout_ms == 0 ? nil : .milliseconds(raw.message_timeout_ms)
        }
        return keepalive
    }

    private static func slowCallThreshold(from raw: swiftws_connection_options) -> Duration? {
        guard raw.slow_callback_ms >= 0 else { return SlowCallWatch.defaultThreshold }
        return raw.slow_callback_ms == 0 ? nil : .milliseconds(raw.slow_callback_ms)
    }

    private static func deflateOptions(from raw: swiftws_connection_options) -> DeflateOptions {
        var options = DeflateOptions()
        if raw.deflate_enabled >= 0 { options.isEnabled = raw.deflate_enabled != 0 }
        if raw.deflate_window_bits >= 0 {
            options.serverMaxWindowBits = Int(raw.deflate_window_bits)
            options.clientMaxWindowBits = Int(raw.deflate_window_bits)
        }
        if raw.deflate_memory_level >= 0 { options.memoryLevel = Int(raw.deflate_memory_level) }
        if raw.deflate_compression_level >= 0 { options.compressionLevel = Int(raw.deflate_compression_level) }
        if raw.deflate_minimum_size >= 0 { options.minimumSize = Int(clamping: raw.deflate_minimum_size) }
        return options
    }

    /// Passes a handler's headers to the shim, refusing any that would break
    /// the response: a name that is not an HTTP token, or a value with a
    /// control character (CR LF would inject headers of its own).
    private func addResponseHeaders(_ headers: [(name: String, value: String)]) throws(Refused) {
        for (name, value) in headers {
            guard HTTPSyntax.isToken(name), HTTPSyntax.isFieldValue(value) else {
                io.log(.error, "\(handlerName) set an invalid response header \(String(reflecting: name)); answering 500")
                throw Refused(status: 500)
            }
        }
        for (name, value) in headers { io.addResponseHeader(name: name, value: value) }
    }

    // MARK: On this thread

    func runBlocking() {
        io.log(.debug, "WebSocket open, served by \(handlerName)")
        let socket = WebSocket(request: request, subprotocol: subprotocol, limits: limits, keepalive: keepalive,
                               compression: compression, slowCalls: slowCalls, io: io, meter: meter)
        defer { io.detach() }
        switch handler {
        case var blocking as any WebSocketHandler:
            transferData(socket, with: &blocking)
            handler = blocking
        case var events as any WebSocketEventHandler:
            runCallbacks(socket, with: &events)
            handler = events
        default:
            preconditionFailure("HandlerType makes only the two handler styles")
        }
    }

    /// An event handler on a held thread (no event MPM, or an HTTP/2
    /// stream): the callbacks around `receive()`.
    private func runCallbacks(_ socket: WebSocket, with handler: inout any WebSocketEventHandler) {
        let connection = WebSocketConnection(request: request, subprotocol: subprotocol, transport: socket,
                                             closeTimeout: keepalive.closeTimeout, handlerExecutor: nil)
        do {
            try slowCalls.timing("onOpen", log: io.log) { try handler.onOpen(connection) }
            if let listener = handler as? any PongListener { socket.onPong = listener.onPong }
            let pacing = handler as? any PacedInput
            if let pacing { socket.handlerIsCaughtUp = { pacing.isCaughtUp } }
            while true {
                if let pacing { try socket.holdInput { pacing.acceptsInput } }
                guard let message = try socket.receive() else { break }
                try slowCalls.timing("onMessage", log: io.log) { try handler.onMessage(message, from: connection) }
            }
            let answer = socket.owesCloseReplyAfterHandler()
            socket.finish(code: answer ? socket.peerCloseCode : .normalClosure)
        } catch WebSocketError.closed {
            socket.finish(code: .normalClosure)
        } catch let error as WebSocketError {
            io.log(.info, "\(handlerName): \(error)")
            socket.finish(code: .internalError)
        } catch {
            io.log(.error, "\(handlerName) threw \(error); closing with 1011")
            socket.finish(code: .internalError)
        }
        let code = socket.receivedCloseFrame ? socket.peerCloseCode ?? .noStatusReceived : .abnormalClosure
        slowCalls.timing("onClose", log: io.log) { handler.onClose(connection, code: code, reason: socket.peerCloseReason) }
    }

    private func transferData(_ socket: WebSocket, with handler: inout any WebSocketHandler) {
        do {
            try socket.runHandlerCode { try handler.transferData(socket) }
            finishAfterHandler(socket)
        } catch WebSocketError.closed {
            // The handler tried to send after the peer closed: not its fault.
            finishAfterHandler(socket)
        } catch let error as WebSocketError {
            io.log(.info, "\(handlerName): \(error)")
            socket.finish(code: .internalError)
        } catch {
            io.log(.error, "\(handlerName).transferData threw \(error); closing with 1011")
            socket.finish(code: .internalError)
        }
    }

    /// Closes with 1000, or answers the client's close as the handler's
    /// passive closing hook says.
    private func finishAfterHandler(_ socket: WebSocket) {
        guard socket.owesCloseReplyAfterHandler() else {
            socket.finish(code: .normalClosure)
            return
        }
        let reply = passiveCloseReply(to: socket)
        socket.finish(code: reply.code, reason: reply.reason)
    }

    /// The handler's answer to the client's close, if it is one that may be
    /// sent; else the client's own code.
    private func passiveCloseReply(to socket: WebSocket) -> (code: CloseCode?, reason: String) {
        guard var blocking = handler as? any WebSocketHandler else { return (socket.peerCloseCode, "") }
        defer { handler = blocking }
        let reply = blocking.passiveClosingHandshake(code: socket.peerCloseCode, reason: socket.peerCloseReason)
        guard let code = reply.code, !code.isValidOnWire else { return reply }
        io.log(.error, "\(handlerName).passiveClosingHandshake chose close code \(code), which may not be sent; "
               + "answering with the client's")
        return (socket.peerCloseCode, "")
    }

    // MARK: Parked in the MPM

    /// After the 101: the driver takes the handler over.
    func openParked() -> ParkedConnection.Next {
        guard let parkedIO, let events = handler as? any WebSocketEventHandler else { return .closed }
        io.log(.debug, "WebSocket open, served by \(handlerName) without a held thread")
        let connection = ParkedConnection(handler: events, handlerName: handlerName, request: request,
                                          subprotocol: subprotocol, limits: limits, keepalive: keepalive,
                                          compression: compression, slowCalls: slowCalls, io: parkedIO, meter: meter)
        parkedIO.driver = connection
        parked = connection
        ProcessShutdown.register(parkedIO)
        return connection.open()
    }

    func resume() -> ParkedConnection.Next {
        parked?.resume() ?? .closed
    }

    func parkedInMPM() {
        parked?.parked()
    }

    func reclaimedByMPM() {
        parked?.reclaimed()
    }

    func abandon() {
        parked?.abandon()
    }

    /// The connection's pool is going: no I/O after this.
    func end() {
        meter.detach()
        guard let parkedIO else { return }
        ProcessShutdown.unregister(parkedIO)
        parked?.detach()
        parkedIO.detach()
        io.detach()
    }

    private static func upgradeRequest(from raw: swiftws_request, logger: Logger) -> UpgradeRequest {
        UpgradeRequest(
            resource: String(cString: raw.resource),
            query: raw.query.map { String(cString: $0) },
            headers: pairs(raw.headers, count: raw.header_count),
            remoteAddress: raw.remote_address.map { String(cString: $0) } ?? "",
            user: raw.user.map { String(cString: $0) },
            isSecure: raw.is_secure != 0,
            tlsVariables: Dictionary(pairs(raw.tls_variables, count: raw.tls_variable_count)) { first, _ in first },
            logger: logger)
    }

    private static func pairs(_ raw: UnsafePointer<swiftws_header>?, count: Int) -> [(name: String, value: String)] {
        guard let raw else { return [] }
        return (0..<count).map { (String(cString: raw[$0].name), String(cString: raw[$0].value)) }
    }
}
