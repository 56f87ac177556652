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
/// The loader keeps it for the life of the process.
package final class HandlerType {
    package let type: any WebSocketHandler.Type
    package let name: String

    init(_ type: any WebSocketHandler.Type) {
        self.type = type
        self.name = String(reflecting: type)
    }

    package static func from(_ pointer: UnsafeMutableRawPointer) -> HandlerType {
        Unmanaged<HandlerType>.fromOpaque(pointer).takeUnretainedValue()
    }
}
