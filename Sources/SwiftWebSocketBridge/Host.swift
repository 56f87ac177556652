import CSwiftWebSocketABI

/// The services table the shim registers in each post_config, before httpd
/// forks; read-only afterwards, so sharing it between threads is safe.
nonisolated(unsafe) var host = swiftws_host()

@_cdecl("swiftws_bridge_init")
public func swiftws_bridge_init(_ table: UnsafePointer<swiftws_host>) {
    host = table.pointee
}
