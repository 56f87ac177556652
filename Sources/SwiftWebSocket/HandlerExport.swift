/// How a handler shared object hands its type to the module. The stub that
/// `swiftwebsocket-build` generates calls `export(_:)` from the C entry point
/// `swiftwebsocket_handler_type`; the bridge turns the pointer back into the
/// type with `HandlerType.from(_:)`.
public enum HandlerExport {
    public static func export(_ type: any WebSocketHandler.Type) -> UnsafeMutableRawPointer {
        Unmanaged.passRetained(HandlerType(.blocking(type))).toOpaque()
    }

    public static func export(_ type: any WebSocketEventHandler.Type) -> UnsafeMutableRawPointer {
        Unmanaged.passRetained(HandlerType(.events(type))).toOpaque()
    }

    /// An async handler runs as the callbacks of `AsyncHandlerAdapter`,
    /// under its own name.
    public static func export<Handler: AsyncWebSocketHandler>(_ type: Handler.Type) -> UnsafeMutableRawPointer {
        Unmanaged.passRetained(HandlerType(.events(AsyncHandlerAdapter<Handler>.self),
                                           name: String(reflecting: type))).toOpaque()
    }
}

/// A handler's metatype boxed as an object, so C can hold it as a pointer.
/// The loader keeps it for the life of the process.
package final class HandlerType {
    package enum Style {
        case blocking(any WebSocketHandler.Type)
        case events(any WebSocketEventHandler.Type)
    }

    package let style: Style
    package let name: String

    init(_ style: Style, name: String? = nil) {
        self.style = style
        switch style {
        case .blocking(let type): self.name = name ?? String(reflecting: type)
        case .events(let type): self.name = name ?? String(reflecting: type)
        }
    }

    /// Whether its connections can wait in the event MPM without a thread.
    package var canPark: Bool {
        if case .events = style { return true }
        return false
    }

    package func makeHandler() -> any WebSocketEndpoint {
        switch style {
        case .blocking(let type): type.init()
        case .events(let type): type.init()
        }
    }

    package static func from(_ pointer: UnsafeMutableRawPointer) -> HandlerType {
        Unmanaged<HandlerType>.fromOpaque(pointer).takeUnretainedValue()
    }
}
