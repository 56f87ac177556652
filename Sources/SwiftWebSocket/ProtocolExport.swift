// A handler imports SwiftWebSocket alone: the protocol's public types
// (Message, CloseCode, Limits, PerMessageDeflate, ServerProtocol) come
// with it.
@_exported import WebSocketProtocol
