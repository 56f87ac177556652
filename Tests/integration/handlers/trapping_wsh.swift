import SwiftWebSocket

#if canImport(Glibc)
import Glibc
#endif

/// An event-style handler that fails as each text message says, for the
/// trap tests: "trap" indexes past the end of an array (a Swift runtime
/// failure), "fatal" calls fatalError, "segv" reads through a null pointer,
/// "sleep N" holds the callback N seconds, "throw" throws; anything else
/// is echoed.
struct Trapping: WebSocketEventHandler {
    struct Failure: Error {}

    func onMessage(_ message: Message, from connection: WebSocketConnection) throws {
        guard case .text(let command) = message else { return }
        let words = command.split(separator: " ")
        switch words.first {
        case "trap":
            let empty: [Int] = words.count > 5 ? [1] : []
            try connection.send(text: "\(empty[words.count - 1])")
        case "fatal":
            fatalError("the trapping handler was asked to stop")
        case "segv":
            let pointer = UnsafePointer<Int>(bitPattern: 8 * words.count)
            try connection.send(text: "\(pointer!.pointee)")
        case "sleep":
            sleep(words.count > 1 ? UInt32(words[1]) ?? 0 : 0)
            try connection.send(text: "slept")
        case "throw":
            throw Failure()
        default:
            try connection.send(text: command)
        }
    }
}
