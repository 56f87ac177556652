import Synchronization

/// A handler whose messages wait in a bounded queue: while it is full its
/// driver reads nothing more (an async handler behind its input).
package protocol PacedInput {
    /// Whether the driver may read more input now.
    var acceptsInput: Bool { get }
    /// Whether the handler has taken every message and sent its answers:
    /// the driver looks before a close or a violation ends the input.
    var isCaughtUp: Bool { get }
}

/// A handler that awaits pongs (an async handler's `ping()`): its driver
/// hands it every pong but the keepalive's.
package protocol PongListener {
    func onPong(_ payload: [UInt8])
}

/// An `AsyncWebSocketHandler` as the callbacks both drivers already run:
/// `onOpen` starts the handler's task, `onMessage` queues for it, `onClose`
/// ends its messages and cancels it. So the async style parks on the event
/// MPM and holds a thread elsewhere exactly as the event style does.
struct AsyncHandlerAdapter<Handler: AsyncWebSocketHandler>: WebSocketEventHandler, PacedInput, PongListener {
    private var handler: Handler
    /// One per connection: the adapter is a value, copied by the drivers;
    /// the queue and the pings are shared by every copy.
    private let inbound = InboundMessages()
    private let pings = PendingPings()
    private var socket: AsyncWebSocket?
    private var run: HandlerRun?

    init() {
        handler = Handler()
    }

    mutating func extraHandshake(_ request: UpgradeRequest, response: inout UpgradeResponse) throws {
        try handler.extraHandshake(request, response: &response)
    }

    var acceptsInput: Bool { inbound.hasRoom }
    var isCaughtUp: Bool { inbound.isCaughtUp }

    func onPong(_ payload: [UInt8]) {
        pings.pongArrived(payload)
    }

    mutating func onOpen(_ connection: WebSocketConnection) {
        let socket = AsyncWebSocket(connection: connection, inbound: inbound, pings: pings)
        self.socket = socket
        run = HandlerRun(handler, socket: socket, connection: connection, inbound: inbound)
    }

    func onMessage(_ message: Message, from connection: WebSocketConnection) {
        inbound.push(message)
    }

    func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String) {
        socket?.connectionClosed(code: code, reason: reason)
        run?.connectionEnded(closeTimeout: connection.closeTimeout)
    }
}

/// One connection's handler task: closes as the handler ends, and is
/// cancelled (and watched) when the connection ends first.
private final class HandlerRun: Sendable {
    private let task: Task<Void, Never>
    private let ending: Ending
    private let logger: Logger
    private let name: String

    init<Handler: AsyncWebSocketHandler>(_ handler: Handler, socket: AsyncWebSocket, connection: WebSocketConnection,
                                         inbound: InboundMessages) {
        let name = String(reflecting: Handler.self)
        let ending = Ending()
        self.ending = ending
        self.name = name
        logger = connection.logger
        // The instance is the task's alone from here on: the handshake that
        // used it has ended, and nothing else keeps it.
        let handler = UncheckedSendable<any AsyncWebSocketHandler>(handler)
        task = Task(executorPreference: connection.handlerExecutor) {
            defer {
                inbound.handlerEnded()
                ending.hasEnded.store(true, ordering: .releasing)
            }
            do {
                try await handler.value.handle(socket)
                connection.close()
            } catch WebSocketError.closed {
                connection.close()  // sent after the connection closed: not the handler's fault
            } catch is CancellationError where Task.isCancelled {
                // The connection ended first.
            } catch {
                connection.logger.error("\(name).handle threw \(error); closing with 1011")
                connection.close(code: .internalError)
            }
        }
    }

    /// Cancels the task; one still running `closeTimeout` later is logged.
    func connectionEnded(closeTimeout: Duration) {
        task.cancel()
        // Most handlers have returned by now: no watch for them.
        guard !ending.hasEnded.load(ordering: .acquiring) else { return }
        Task { [self] in
            try? await Task.sleep(for: closeTimeout)
            if !ending.hasEnded.load(ordering: .acquiring) {
                logger.warning("\(name).handle still runs \(closeTimeout) after its connection closed: it does not end when cancelled")
            }
        }
    }
}

/// Whether a handler's task has ended, for the watch that runs after it.
private final class Ending: Sendable {
    let hasEnded = Atomic(false)
}

/// A value handed to a task that alone uses it.
private struct UncheckedSendable<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}
