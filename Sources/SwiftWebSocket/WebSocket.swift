/// One accepted WebSocket connection, driven from the handler's thread:
/// `receive()` blocks until a message arrives, `send` writes and flushes.
/// Pings are answered and close frames handled inside `receive()`.
///
/// Use it only from the thread running `transferData`.
public final class WebSocket {
    /// The upgrade request this connection was accepted from.
    public let request: UpgradeRequest
    /// The subprotocol agreed in the handshake, if any.
    public let subprotocol: String?
    /// The code of the close frame the peer sent (nil if none yet, or if it
    /// sent none).
    public private(set) var peerCloseCode: CloseCode?
    public private(set) var peerCloseReason = ""

    private var engine: ServerProtocol
    private let io: any ConnectionIO
    private let readBuffer: UnsafeMutableRawBufferPointer
    /// Set when the stream ended or failed: no more reads or writes.
    private var transportClosed = false

    /// Reads of at most one TLS record: larger buffers only cost memory.
    static let readBufferSize = 16 * 1024

    /// permessage-deflate as agreed in the handshake, or nil.
    public var compression: PerMessageDeflate? { engine.compression }

    package init(request: UpgradeRequest, subprotocol: String?, limits: Limits,
                 compression: PerMessageDeflate? = nil, io: any ConnectionIO) {
        self.request = request
        self.subprotocol = subprotocol
        self.engine = ServerProtocol(limits: limits, compression: compression)
        self.io = io
        self.readBuffer = .allocate(byteCount: Self.readBufferSize, alignment: 8)
    }

    deinit {
        readBuffer.deallocate()
    }

    /// Whether messages can still be sent.
    public var isOpen: Bool { engine.state == .open && !transportClosed }

    /// The next message, or nil once the connection is closed: by a close
    /// frame from the peer, a protocol violation, the stream ending, or no
    /// data within httpd's `Timeout` (then it closes with 1001).
    public func receive() throws -> Message? {
        try io.checkAccess()
        while true {
            while let event = engine.nextEvent() {
                switch event {
                case .message(let message):
                    return message
                case .ping, .pong:
                    try flushPendingOutput()
                case .close(let code, let reason):
                    peerCloseCode = code
                    peerCloseReason = reason
                    try flushPendingOutput()
                    return nil
                case .failed(let violation):
                    io.log(.info, "closing with \(violation.closeCode): \(violation)")
                    try? flushPendingOutput()
                    return nil
                }
            }
            if engine.state == .closed || transportClosed { return nil }
            guard try readMore() else { return nil }
        }
    }

    public func send(_ message: Message) throws {
        switch message {
        case .text(let text): try send(text: text)
        case .binary(let bytes): try send(binary: bytes)
        }
    }

    public func send(text: String) throws {
        var text = text
        try text.withUTF8 { bytes in
            try sendFrame(.text, UnsafeRawBufferPointer(bytes))
        }
    }

    public func send(binary: [UInt8]) throws {
        try binary.withUnsafeBytes { bytes in try sendFrame(.binary, bytes) }
    }

    /// Sends a close frame and waits for the peer's, discarding any messages
    /// that arrive meanwhile. Does nothing if already closed.
    public func close(code: CloseCode = .normalClosure, reason: String = "") throws {
        try io.checkAccess()
        guard !transportClosed, engine.close(code: code, reason: reason) else { return }
        try flushPendingOutput()
        while true {
            while let event = engine.nextEvent() {
                if case .close(let code, let reason) = event {
                    peerCloseCode = code
                    peerCloseReason = reason
                }
            }
            guard engine.state != .closed, try readMore() else { break }
        }
        try? flushPendingOutput()
    }

    /// Ends the connection after the handler returned or threw: a close
    /// frame with `code` if none was exchanged yet.
    package func finish(code: CloseCode) {
        try? close(code: code)
    }

    private func sendFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer) throws {
        try io.checkAccess()
        guard !transportClosed, let frame = engine.prepareMessage(opcode: opcode, payload: payload) else {
            throw WebSocketError.closed
        }
        try flushPendingOutput()
        if frame.isCompressed {
            let compressed = engine.compressedPayload
            try frame.header.withUnsafeBytes { header in
                try compressed.withUnsafeBytes { body in try write(header, body) }
            }
        } else {
            try frame.header.withUnsafeBytes { header in try write(header, payload) }
        }
    }

    /// Reads once and feeds the engine. False at the end of the stream, and
    /// after a timeout, which closes with 1001 without waiting for a reply.
    private func readMore() throws -> Bool {
        let count: Int
        do {
            count = try io.read(into: readBuffer)
        } catch WebSocketError.timedOut {
            if engine.close(code: .goingAway, reason: "timeout") { try? flushPendingOutput() }
            transportClosed = true
            engine.connectionLost()
            return false
        } catch {
            transportClosed = true
            engine.connectionLost()
            throw error
        }
        guard count > 0 else {
            transportClosed = true
            engine.connectionLost()
            return false
        }
        engine.receive(UnsafeRawBufferPointer(rebasing: readBuffer[0..<count]))
        return true
    }

    private func flushPendingOutput() throws {
        guard !engine.pendingOutput.isEmpty, !transportClosed else { return }
        defer { engine.pendingOutput.removeAll(keepingCapacity: true) }
        try engine.pendingOutput.withUnsafeBytes { bytes in
            try write(bytes, UnsafeRawBufferPointer(start: nil, count: 0))
        }
    }

    private func write(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws {
        do {
            try io.write(first, second)
        } catch {
            transportClosed = true
            engine.connectionLost()
            throw error
        }
    }
}
