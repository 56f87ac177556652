import Synchronization

/// One message sent in pieces as they are produced, from
/// `AsyncWebSocket.withMessageWriter`: each `write` goes out as a fragment,
/// and the message ends when the body returns. Meanwhile other messages to
/// the connection (the handler's own, its groups' broadcasts) wait for the
/// end; pings and a close do not.
public final class MessageWriter: Sendable {
    public enum Kind: Sendable {
        case text, binary
    }

    public let kind: Kind
    private let connection: WebSocketConnection
    private let progress = Mutex(Progress.notStarted)

    private enum Progress {
        case notStarted, started, ended
    }

    init(kind: Kind, connection: WebSocketConnection) {
        self.kind = kind
        self.connection = connection
    }

    /// The next piece of a text message: whole characters, as a `String`
    /// always is.
    public func write(text: String) async throws {
        guard kind == .text else { throw WebSocketError.fragmentedMessageInProgress }
        try await write(Array(text.utf8))
    }

    /// The next piece of a binary message.
    public func write(binary: [UInt8]) async throws {
        guard kind == .binary else { throw WebSocketError.fragmentedMessageInProgress }
        try await write(binary)
    }

    /// Waits as `AsyncWebSocket.send` does: the first piece behind
    /// everything queued, the next ones behind the pieces before them.
    private func write(_ piece: [UInt8]) async throws {
        let first = try progress.withLock { progress throws(WebSocketError) in
            guard progress != .ended else { throw .closed }
            defer { progress = .started }
            return progress == .notStarted
        }
        if first {
            await connection.waitForRoomToSend()
        } else {
            await connection.waitForRoomToStream()
        }
        try connection.queueFragment(opcode, piece, isFinal: false)
    }

    /// Ends the message: an empty last fragment, since each piece went out
    /// as it came. A message with no pieces is one empty frame.
    func end() throws {
        progress.withLock { $0 = .ended }
        try connection.queueFragment(opcode, [], isFinal: true)
    }

    /// What was written cannot be taken back, and nothing else may follow
    /// an unfinished message but a close.
    func abandon(after error: any Error) {
        progress.withLock { $0 = .ended }
        connection.logger.error("a streamed message was left unfinished (\(error)); closing with 1011")
        connection.close(code: .internalError)
    }

    private var opcode: Opcode {
        kind == .text ? .text : .binary
    }
}
