import CSwiftWebSocketABI
import SwiftWebSocket

// The @_cdecl entry points the shim calls; swiftwebsocket.h declares them.

@_cdecl("swiftws_session_open")
public func swiftws_session_open(
    _ handlerType: UnsafeMutableRawPointer,
    _ request: UnsafePointer<swiftws_request>,
    _ io: UnsafeMutableRawPointer,
    _ status: UnsafeMutablePointer<Int32>
) -> UnsafeMutableRawPointer? {
    do {
        let session = try Session(type: HandlerType.from(handlerType), request: request, io: io)
        status.pointee = 0
        return Unmanaged.passRetained(session).toOpaque()
    } catch {
        status.pointee = error.status
        return nil
    }
}

@_cdecl("swiftws_session_run_blocking")
public func swiftws_session_run_blocking(_ session: UnsafeMutableRawPointer) {
    Unmanaged<Session>.fromOpaque(session).takeUnretainedValue().runBlocking()
}

@_cdecl("swiftws_session_free")
public func swiftws_session_free(_ session: UnsafeMutableRawPointer) {
    Unmanaged<Session>.fromOpaque(session).release()
}
