/// A complete data message, text kept distinct from binary.
public enum Message: Equatable, Sendable {
    case text(String)
    case binary([UInt8])
}
