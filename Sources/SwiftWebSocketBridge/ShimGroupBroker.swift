import CSwiftWebSocketABI
import SwiftWebSocket

/// Named groups' broker: the shim's Redis connections (CShim/broker.c),
/// one thread per child that never makes a caller wait.
struct ShimGroupBroker: GroupBroker {
    func publish(group: String, payload: [UInt8]) -> Bool {
        var group = group
        return group.withUTF8 { name in
            payload.withUnsafeBytes { bytes in
                host.broker_publish(name.baseAddress, name.count, bytes.baseAddress, bytes.count)
            }
        } == SWIFTWS_PUBLISH_SENT
    }

    func subscribe(group: String) {
        var group = group
        group.withUTF8 { name in host.broker_subscribe(name.baseAddress, name.count) }
    }

    func unsubscribe(group: String) {
        var group = group
        group.withUTF8 { name in host.broker_unsubscribe(name.baseAddress, name.count) }
    }
}

@_cdecl("swiftws_bridge_groups_init")
public func swiftws_bridge_groups_init(_ hasBroker: Int32, _ maxMessageSize: Int64, _ maxChildren: Int32) {
    NamedGroups.configure(broker: hasBroker != 0 ? ShimGroupBroker() : nil,
                          maxMessageSize: maxMessageSize > 0 ? Int(clamping: maxMessageSize) : Limits().maxMessageSize,
                          severalProcesses: maxChildren > 1) { level, line in
        host.log_server(level.rawValue, line)
    }
}

@_cdecl("swiftws_bridge_group_message")
public func swiftws_bridge_group_message(_ group: UnsafePointer<CChar>, _ groupLength: Int,
                                         _ payload: UnsafeRawPointer, _ length: Int) {
    // A channel name that is not UTF-8 names none of our groups.
    guard let name = String(validating: UnsafeRawBufferPointer(start: group, count: groupLength), as: UTF8.self)
    else { return }
    NamedGroups.received(UnsafeRawBufferPointer(start: payload, count: length), on: name)
}
