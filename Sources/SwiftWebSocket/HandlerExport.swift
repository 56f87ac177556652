/// How a handler shared object hands its type to the module. The stub that
/// `swiftwebsocket-build` generates calls `export(_:)` from the C entry point
/// `swiftwebsocket_handler_type`; the bridge turns the pointer back into the
/// type with `HandlerType.from(_:)`.
public enum HandlerExport {
    public static func export(_ type: any WebSocketHandler.Type) -> UnsafeMutableRawPointer {
        Unmanaged.passRetained(HandlerType(type)).toOpaque()
    }
}

/// A handler's metatype boxed as an object, so C can hold it as a pointer.
package final class HandlerType {
    package let type: any WebSocketHandler.Type
    /// The type's name as a C string, for log lines; lives as long as the box.
    package let name: ContiguousArray<CChar>

    init(_ type: any WebSocketHandler.Type) {
        self.type = type
        self.name = ContiguousArray(String(reflecting: type).utf8CString)
    }

    package static func from(_ pointer: UnsafeMutableRawPointer) -> HandlerType {
        Unmanaged<HandlerType>.fromOpaque(pointer).takeUnretainedValue()
    }
}
