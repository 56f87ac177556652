// hummingbird-echo PORT: echoes every message on ws://127.0.0.1:PORT/echo
// (text as text, binary as binary), as the benchmark's hummingbird-websocket
// peer.
//
// Set up for echo speed as its documentation suggests:
// - the HTTP/1.1 + WebSocket upgrade server with the closure form, so no
//   router or middleware runs on the upgrade;
// - Hummingbird's default event loop group, one loop per core;
// - logging at .error: nothing is formatted per connection or message;
// - maxFrameSize 16 MiB (the default, 16 KiB, refuses a 256 KiB frame and
//   would split 256 KiB replies into 16 KiB frames);
// - permessage-deflate with the library's defaults (zlib's level 6, as the
//   module uses), negotiated when a client offers it, with
//   maxDecompressedFrameSize raised from 16 KiB to 16 MiB for 256 KiB
//   messages.
// Its automatic ping (every 30 s) stays on: it costs nothing in a run.

import Hummingbird
import HummingbirdWSCompression
import HummingbirdWebSocket
import Logging

guard CommandLine.arguments.count == 2, let port = Int(CommandLine.arguments[1]) else {
    fatalError("usage: hummingbird-echo PORT")
}
let maxSize = 16 << 20

var logger = Logger(label: "hummingbird-echo")
logger.logLevel = .error

let app = Application(
    router: Router(),
    server: .http1WebSocketUpgrade(
        configuration: .init(ws: .init(maxFrameSize: maxSize,
                                       extensions: [.perMessageDeflate(maxDecompressedFrameSize: maxSize)]))
    ) { request, _, _ in
        guard request.path == "/echo" else { return .dontUpgrade }
        return .upgrade([:]) { inbound, outbound, _ in
            for try await message in inbound.messages(maxSize: maxSize) {
                switch message {
                case .text(let text): try await outbound.write(.text(text))
                case .binary(let buffer): try await outbound.write(.binary(buffer))
                }
            }
        }
    },
    configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: nil),
    logger: logger
)
try await app.runService()
