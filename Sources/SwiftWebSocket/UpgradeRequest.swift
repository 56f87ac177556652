/// The facts of a WebSocket upgrade request that a handler may judge it by.
public struct UpgradeRequest: Sendable {
    /// The path the client asked for, %-decoded, without the query.
    public var resource: String
    /// The query string without `?`, or nil.
    public var query: String?
    /// Every request header, in the order received.
    public var headers: [(name: String, value: String)]
    public var remoteAddress: String
    /// The user Apache authenticated (`r->user`), or nil.
    public var user: String?
    /// Whether the connection uses TLS.
    public var isSecure: Bool
    /// mod_ssl's variables for this connection (`SSL_PROTOCOL`,
    /// `SSL_CIPHER`, `SSL_CLIENT_S_DN`, `SSL_CLIENT_VERIFY`, ...; see
    /// README), those that have a value; empty without TLS.
    public var tlsVariables: [String: String]
    /// Logs to Apache's error log against this request.
    public var logger: Logger

    public init(resource: String, query: String? = nil, headers: [(name: String, value: String)] = [],
                remoteAddress: String = "", user: String? = nil, isSecure: Bool = false,
                tlsVariables: [String: String] = [:], logger: Logger? = nil) {
        self.resource = resource
        self.query = query
        self.headers = headers
        self.remoteAddress = remoteAddress
        self.user = user
        self.isSecure = isSecure
        self.tlsVariables = tlsVariables
        self.logger = logger ?? .discarding
    }

    /// The first value of a header, matched case-insensitively.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    /// Every value of a header, matched case-insensitively, in order.
    public func headerValues(_ name: String) -> [String] {
        let wanted = name.lowercased()
        return headers.filter { $0.name.lowercased() == wanted }.map(\.value)
    }

    /// The query's parameters (`room=lobby&since=5`) in order, names and
    /// values %-decoded with "+" as a space (HTML form encoding). A pair
    /// without "=" has an empty value.
    public var queryParameters: [(name: String, value: String)] {
        guard let query else { return [] }
        return query.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (HTTPSyntax.formDecoded(parts[0]), parts.count > 1 ? HTTPSyntax.formDecoded(parts[1]) : "")
        }
    }

    /// The value of the first query parameter named `name`, if present.
    public func queryParameter(_ name: String) -> String? {
        queryParameters.first { $0.name == name }?.value
    }

    /// The `Origin` header, if sent (browsers always send it).
    public var origin: String? { header("Origin") }

    /// The cookies the client sent (`Cookie` headers), in order, values as
    /// sent (not %-decoded). Pairs without `=` are skipped.
    public var cookies: [(name: String, value: String)] {
        headerValues("Cookie")
            .flatMap { $0.split(separator: ";") }
            .compactMap { pair in
                guard let equals = pair.firstIndex(of: "=") else { return nil }
                let name = pair[..<equals].trimmingWhitespace()
                guard !name.isEmpty else { return nil }
                var value = pair[pair.index(after: equals)...].trimmingWhitespace()
                if value.count >= 2, value.first == "\"", value.last == "\"" {
                    value = value.dropFirst().dropLast()
                }
                return (String(name), String(value))
            }
    }

    /// The value of the first cookie named `name`, if sent.
    public func cookie(_ name: String) -> String? {
        cookies.first { $0.name == name }?.value
    }

    /// The extensions the client offered (`Sec-WebSocket-Extensions`), in
    /// its order of preference; empty if none or malformed.
    public var requestedExtensions: [ExtensionOffer] {
        header("Sec-WebSocket-Extensions").flatMap(ExtensionOffer.parse) ?? []
    }

    /// The subprotocols the client offered, in its order of preference.
    public var requestedSubprotocols: [String] {
        headerValues("Sec-WebSocket-Protocol")
            .flatMap { $0.split(separator: ",") }
            .map { String($0.trimmingWhitespace()) }
            .filter { !$0.isEmpty }
    }
}

/// What a handler adds to the 101 response.
public struct UpgradeResponse: Sendable {
    /// Must be one of `UpgradeRequest.requestedSubprotocols`, or nil.
    public var subprotocol: String?
    public var headers: [(name: String, value: String)] = []
    /// permessage-deflate as the server configuration allows it; set
    /// `compression.isEnabled = false` to decline it for this connection,
    /// or lower its windows and levels.
    public var compression: DeflateOptions

    public init(subprotocol: String? = nil, headers: [(name: String, value: String)] = [],
                compression: DeflateOptions = DeflateOptions()) {
        self.subprotocol = subprotocol
        self.headers = headers
        self.compression = compression
    }
}

/// Thrown from `extraHandshake` to refuse the upgrade with an HTTP status.
public struct HandshakeRejection: Error, Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]

    public init(status: Int, headers: [(name: String, value: String)] = []) {
        self.status = status
        self.headers = headers
    }
}

extension Substring {
    func trimmingWhitespace() -> Substring {
        var s = self
        while let first = s.first, first == " " || first == "\t" { s = s.dropFirst() }
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        return s
    }
}
