import Dispatch
import Glibc
import Synchronization
import Testing
@testable import SwiftWebSocket

/// Other threads send to a WebSocket and close it while its owner runs
/// `receive()`, as a chat handler's members do. Under ThreadSanitizer
/// (`make sanitize`) these check the wake-ups and the WebSocket's own state
/// for data races, but not Outbox's: ThreadSanitizer cannot see a contended
/// Synchronization.Mutex handed over, so Outbox is suppressed
/// (Tests/tsan-suppressions.txt). Anywhere they check nothing is lost,
/// duplicated or reordered.
@Suite struct CrossThreadTests {
    static let senders = 4
    static let messagesEach = 300

    static func socket(_ io: PeerIO) -> WebSocket {
        // The idle timeout ends a test whose owner was never woken,
        // instead of hanging it.
        WebSocket(request: UpgradeRequest(resource: "/t"), subprotocol: nil, limits: Limits(),
                  keepalive: Keepalive(pingInterval: nil, idleTimeout: .seconds(30)), io: io)
    }

    @Test func everyMessageFromSeveralThreadsArrivesInItsSendersOrder() throws {
        let io = PeerIO(closesAfter: Self.senders * Self.messagesEach)
        let ws = Self.socket(io)
        let threads = (0..<Self.senders).map { sender in
            SpawnedThread {
                for index in 0..<Self.messagesEach { try ws.send(text: "\(sender) \(index)") }
            }
        }
        #expect(try ws.receive() == nil, "the peer closes once it has every message")
        ws.finish(code: ws.peerCloseCode)
        for thread in threads { try thread.join() }
        let sent = Self.messagesBySender(io.frames)
        #expect(sent == Array(repeating: Array(0..<Self.messagesEach), count: Self.senders))
        #expect(io.frames.last == PeerIO.Frame(opcode: 0x8, payload: [0x03, 0xE8]), "the reply to the peer's 1000")
    }

    @Test func aCloseFromAnotherThreadStopsSendersCleanly() throws {
        let io = PeerIO(closesAfter: nil)
        let ws = Self.socket(io)
        let threads = (0..<Self.senders).map { sender in
            SpawnedThread {
                // Until the close: then every send throws `.closed`.
                for index in 0..<Self.messagesEach * 10 {
                    do { try ws.send(text: "\(sender) \(index)") } catch WebSocketError.closed { return }
                }
            }
        }
        let closer = SpawnedThread {
            while io.messagesWritten < Self.messagesEach { usleep(1000) }
            try ws.close(code: CloseCode(4000), reason: "enough")
        }
        #expect(try ws.receive() == nil)
        #expect(!ws.isOpen)
        for thread in threads + [closer] { try thread.join() }
        #expect(ws.peerCloseCode == CloseCode(4000), "the peer echoes our close")
        // Whatever each sender got out before the close, it came whole and
        // in order, and the close came last.
        let frames = io.frames
        #expect(frames.last == PeerIO.Frame(opcode: 0x8, payload: [0x0F, 0xA0] + Array("enough".utf8)))
        #expect(frames.dropLast().allSatisfy { $0.opcode == 0x1 })
        for indices in Self.messagesBySender(frames.dropLast()) {
            #expect(indices == Array(0..<indices.count))
        }
    }

    /// The indices of the "sender index" text frames, by sender.
    static func messagesBySender(_ frames: some Sequence<PeerIO.Frame>) -> [[Int]] {
        var indices = Array(repeating: [Int](), count: senders)
        for frame in frames where frame.opcode == 0x1 {
            let fields = String(decoding: frame.payload, as: UTF8.self).split(separator: " ").compactMap { Int($0) }
            indices[fields[0]].append(fields[1])
        }
        return indices
    }
}

/// A client on the other end of a connection that senders write to from
/// other threads: `wait` sleeps until woken, as the shim's poll on its
/// eventfd does, and the client sends its close frame once it has
/// `closesAfter` messages, or once the server's close arrived (nil).
final class PeerIO: ConnectionIO, @unchecked Sendable {
    struct Frame: Equatable {
        var opcode: UInt8
        var payload: [UInt8]
    }

    private let closesAfter: Int?
    private let owner = pthread_self()
    private let wakeUps = DispatchSemaphore(value: 0)
    /// Owner only, like the connection.
    private(set) var frames: [Frame] = []
    private var closeSent = false
    /// Read by the closing thread as it waits for the owner to get going.
    /// An atomic, not a Mutex: ThreadSanitizer cannot see a contended
    /// Mutex's handover (Tests/tsan-suppressions.txt).
    private let written = Atomic(0)
    var messagesWritten: Int { written.load(ordering: .acquiring) }

    init(closesAfter: Int?) {
        self.closesAfter = closesAfter
    }

    let logLevel = LogLevel.debug
    let isStopping = false

    func checkAccess() throws(WebSocketError) {
        guard pthread_equal(owner, pthread_self()) != 0 else { throw .wrongThread }
    }

    func wait(timeout: Duration?) throws(WebSocketError) {
        guard let timeout else { return wakeUps.wait() }
        let (seconds, attoseconds) = timeout.components
        _ = wakeUps.wait(timeout: .now() + .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)))
    }

    func wake() { wakeUps.signal() }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(WebSocketError) -> Int? {
        let serverClosed = frames.last?.opcode == 0x8
        let hasAll = closesAfter.map { messagesWritten >= $0 } ?? false
        guard !closeSent else { return 0 }
        guard serverClosed || hasAll else { return nil }
        // The server's close code echoed, or 1000; masked with a zero key.
        let code = serverClosed ? Array(frames.last!.payload.prefix(2)) : [0x03, 0xE8]
        let frame: [UInt8] = [0x88, 0x80 | UInt8(code.count), 0, 0, 0, 0] + code
        buffer.copyBytes(from: frame)
        closeSent = true
        return frame.count
    }

    /// Server frames are unmasked and, in these tests, short.
    func write(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(WebSocketError) {
        var bytes = Array(first) + Array(second)
        while bytes.count >= 2 {
            let end = 2 + Int(bytes[1])
            frames.append(Frame(opcode: bytes[0] & 0x0F, payload: Array(bytes[2..<end])))
            if bytes[0] & 0x0F == 0x1 { written.add(1, ordering: .releasing) }
            bytes.removeFirst(end)
        }
    }

    func log(_ level: LogLevel, _ message: String) {}
}
