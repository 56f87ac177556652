import SwiftWebSocket

/// An async handler whose first message says what it does:
/// - "return" / "throw": ends its task so (1000 / 1011).
/// - "flood N": sends N messages of 64 KiB, then "sent N" (logged as it goes).
/// - "stall S": takes no message for S seconds, then echoes.
/// - "wait": awaits forever, logging when it is cancelled.
/// - "stubborn": waits 3 s for a task of its own, ignoring cancellation
///   (a detached task's is its own).
/// - "ping": pings, then sends "round trip N µs".
/// - "stream N": streams a text message of N pieces "piece i;", 0.2 s
///   apart; a message sent after the first piece ("overtaken") waits for
///   its end.
/// - "stream-throw": streams one piece, then throws.
/// Otherwise it echoes.
struct AsyncBehaviours: AsyncWebSocketHandler {
    struct Thrown: Error {}

    func handle(_ socket: AsyncWebSocket) async throws {
        var iterator = socket.messages.makeAsyncIterator()
        guard let first = try await iterator.next(), case .text(let command) = first else { return }
        let words = command.split(separator: " ")
        switch words.first {
        case "return":
            return
        case "throw":
            throw Thrown()
        case "flood":
            let count = Int(words[1])!
            let chunk = [UInt8](repeating: 0x61, count: 64 * 1024)
            for index in 1...count {
                try await socket.send(binary: chunk)
                if index % 50 == 0 { socket.logger.info("flood sent \(index)") }
            }
            try await socket.send(text: "sent \(count)")
        case "stall":
            try await Task.sleep(for: .seconds(Int(words[1])!))
            socket.logger.info("stall over")
        case "wait":
            do {
                try await Task.sleep(for: .seconds(3600))
            } catch is CancellationError {
                socket.logger.info("task cancelled; close code \(socket.peerCloseCode.map { "\($0)" } ?? "none")")
                throw CancellationError()
            }
        case "stubborn":
            await Task.detached { try? await Task.sleep(for: .seconds(3)) }.value
        case "ping":
            let (seconds, attoseconds) = try await socket.ping().components
            try await socket.send(text: "round trip \(seconds * 1_000_000 + attoseconds / 1_000_000_000_000) µs")
        case "stream":
            try await socket.withMessageWriter(.text) { writer in
                for index in 0..<Int(words[1])! {
                    try await writer.write(text: "piece \(index);")
                    if index == 0 { try await socket.send(text: "overtaken") }
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
        case "stream-throw":
            try await socket.withMessageWriter(.binary) { writer in
                try await writer.write(binary: [1, 2, 3])
                throw Thrown()
            }
        default:
            try await socket.send(first)
        }
        while let message = try await iterator.next() {
            try await socket.send(message)
        }
    }
}
