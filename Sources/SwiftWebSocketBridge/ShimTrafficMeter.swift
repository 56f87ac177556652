import CSwiftWebSocketABI
import SwiftWebSocket

/// `TrafficMeter` over the shim's `swiftws_traffic`: the connection's own
/// totals, and an atomic add to its resource's counters in this child's
/// slot of the shared memory (status.c). The record lives in the
/// session's pool: after `detach()` nothing is counted.
final class ShimTrafficMeter: TrafficMeter {
    private var traffic: UnsafeMutablePointer<swiftws_traffic>?

    init(_ traffic: UnsafeMutablePointer<swiftws_traffic>?) {
        self.traffic = traffic
    }

    func detach() {
        traffic = nil
    }

    func received(messageBytes: Int, wireBytes: Int) {
        guard let traffic else { return }
        swiftws_count_message_in(traffic, Int64(messageBytes), Int64(wireBytes))
    }

    func sent(bytes: Int, wireBytes: Int, endsMessage: Bool) {
        guard let traffic else { return }
        swiftws_count_sent(traffic, Int64(bytes), Int64(wireBytes), endsMessage ? 1 : 0)
    }

    func closeSent(code: CloseCode?, reason: String) {
        countClose(sent: true, code: code, reason: reason)
    }

    func closeReceived(code: CloseCode?, reason: String) {
        countClose(sent: false, code: code, reason: reason)
    }

    func closedOverMemoryBudget() {
        guard let traffic else { return }
        swiftws_count(traffic, Int32(SWIFTWS_COUNT_MEMORY_BUDGET_CLOSES), 1)
    }

    private func countClose(sent: Bool, code: CloseCode?, reason: String) {
        guard let traffic else { return }
        var reason = reason
        reason.withUTF8 { bytes in
            host.count_close(traffic, sent ? 1 : 0, code.map { Int32($0.rawValue) } ?? -1,
                             UnsafeRawPointer(bytes.baseAddress)?.assumingMemoryBound(to: CChar.self), bytes.count)
        }
    }
}
