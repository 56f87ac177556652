import CSwiftWebSocketABI
import SwiftWebSocket

// The @_cdecl entry points the shim calls; swiftwebsocket.h declares them.

@_cdecl("swiftws_handler_can_park")
public func swiftws_handler_can_park(_ handlerType: UnsafeMutableRawPointer) -> Int32 {
    HandlerType.from(handlerType).canPark ? 1 : 0
}

@_cdecl("swiftws_handler_name")
public func swiftws_handler_name(_ handlerType: UnsafeMutableRawPointer, _ buffer: UnsafeMutablePointer<CChar>,
                                 _ size: Int) {
    guard size > 0 else { return }
    let name = HandlerType.from(handlerType).name.utf8.prefix(size - 1)
    var end = buffer
    for byte in name {
        end.pointee = CChar(bitPattern: byte)
        end += 1
    }
    end.pointee = 0
}

@_cdecl("swiftws_session_open")
public func swiftws_session_open(
    _ handlerType: UnsafeMutableRawPointer,
    _ request: UnsafePointer<swiftws_request>,
    _ io: UnsafeMutableRawPointer,
    _ parking: Int32,
    _ status: UnsafeMutablePointer<Int32>
) -> UnsafeMutableRawPointer? {
    do throws(Session.Refused) {
        let session = try runningHandlerCode(for: io) { () throws(Session.Refused) in
            try Session(type: HandlerType.from(handlerType), request: request, io: io, parking: parking != 0)
        }
        status.pointee = 0
        return Unmanaged.passRetained(session).toOpaque()
    } catch {
        status.pointee = error.status
        return nil
    }
}

private func session(_ pointer: UnsafeMutableRawPointer) -> Session {
    Unmanaged<Session>.fromOpaque(pointer).takeUnretainedValue()
}

/// Runs a session's step that may call its handler, named for the trap
/// report.
private func handlerStep<T>(_ pointer: UnsafeMutableRawPointer, _ step: (Session) -> T) -> T {
    let session = session(pointer)
    return runningHandlerCode(for: session.shimIO) { step(session) }
}

@_cdecl("swiftws_session_run_blocking")
public func swiftws_session_run_blocking(_ pointer: UnsafeMutableRawPointer) {
    handlerStep(pointer) { $0.runBlocking() }
}

@_cdecl("swiftws_session_open_parked")
public func swiftws_session_open_parked(_ pointer: UnsafeMutableRawPointer) -> Int32 {
    handlerStep(pointer) { $0.openParked().abiValue }
}

@_cdecl("swiftws_session_resume")
public func swiftws_session_resume(_ pointer: UnsafeMutableRawPointer) -> Int32 {
    handlerStep(pointer) { $0.resume().abiValue }
}

@_cdecl("swiftws_session_parked")
public func swiftws_session_parked(_ pointer: UnsafeMutableRawPointer) {
    session(pointer).parkedInMPM()
}

@_cdecl("swiftws_session_reclaimed")
public func swiftws_session_reclaimed(_ pointer: UnsafeMutableRawPointer) {
    session(pointer).reclaimedByMPM()
}

@_cdecl("swiftws_session_abandon")
public func swiftws_session_abandon(_ pointer: UnsafeMutableRawPointer) {
    handlerStep(pointer) { $0.abandon() }
}

/// onClose may run here, and the handler's deinit.
@_cdecl("swiftws_session_free")
public func swiftws_session_free(_ pointer: UnsafeMutableRawPointer) {
    handlerStep(pointer) { session in
        session.end()
        Unmanaged<Session>.fromOpaque(pointer).release()
    }
}

extension ParkedConnection.Next {
    /// SWIFTWS_NEXT_*.
    var abiValue: Int32 {
        switch self {
        case .input: Int32(SWIFTWS_NEXT_INPUT)
        case .output: Int32(SWIFTWS_NEXT_OUTPUT)
        case .closed: Int32(SWIFTWS_NEXT_CLOSED)
        }
    }
}
