import CSwiftWebSocketABI
import SwiftWebSocket

@_cdecl("swiftws_bridge_memory_init")
public func swiftws_bridge_memory_init(_ limit: Int64) {
    MemoryBudget.shared.configure(limit: Int(clamping: limit), log: { level, line in
        host.log_server(level.rawValue, line)
    }, episodeEnded: {
        host.return_free_memory()
    })
}
