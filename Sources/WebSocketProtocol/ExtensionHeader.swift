/// One extension a client offers in `Sec-WebSocket-Extensions`
/// (RFC 6455 9.1): a name and its parameters, in order.
public struct ExtensionOffer: Equatable, Sendable {
    public var name: String
    /// Each parameter with its value, or nil for a bare parameter. A value
    /// given as a quoted string arrives unquoted.
    public var parameters: [Parameter]

    public struct Parameter: Equatable, Sendable {
        public var name: String
        public var value: String?
    }

    /// Parses the header's value (several header lines joined with ", ").
    /// Nil when it does not follow the grammar: the whole header is then
    /// ignored, and no extension is negotiated.
    public static func parse(_ header: String) -> [ExtensionOffer]? {
        var scanner = Scanner(Array(header.utf8))
        var offers: [ExtensionOffer] = []
        while true {
            scanner.skipWhitespace()
            if scanner.atEnd { return offers }
            if scanner.take(UInt8(ascii: ",")) { continue }  // empty list elements are allowed
            guard let name = scanner.token() else { return nil }
            var offer = ExtensionOffer(name: name, parameters: [])
            scanner.skipWhitespace()
            while scanner.take(UInt8(ascii: ";")) {
                scanner.skipWhitespace()
                guard let parameter = scanner.token() else { return nil }
                scanner.skipWhitespace()
                var value: String?
                if scanner.take(UInt8(ascii: "=")) {
                    scanner.skipWhitespace()
                    // RFC 6455 9.1: a quoted value must still be a token.
                    guard let v = scanner.quotedString() ?? scanner.token(), HTTPSyntax.isToken(v) else { return nil }
                    value = v
                    scanner.skipWhitespace()
                }
                offer.parameters.append(Parameter(name: parameter, value: value))
            }
            offers.append(offer)
            scanner.skipWhitespace()
            guard scanner.atEnd || scanner.take(UInt8(ascii: ",")) else { return nil }
        }
    }

    /// A byte cursor over the header value.
    private struct Scanner {
        let bytes: [UInt8]
        var index = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { index >= bytes.count }

        mutating func skipWhitespace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        mutating func token() -> String? {
            let start = index
            while index < bytes.count, HTTPSyntax.isTokenByte(bytes[index]) { index += 1 }
            return index > start ? String(decoding: bytes[start..<index], as: UTF8.self) : nil
        }

        mutating func quotedString() -> String? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            var value: [UInt8] = []
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return String(decoding: value, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { return nil }
                    value.append(bytes[index])
                    index += 1
                default:
                    value.append(byte)
                }
            }
            return nil  // unterminated
        }
    }
}
