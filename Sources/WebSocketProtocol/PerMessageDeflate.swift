/// What the server is willing to do for permessage-deflate (RFC 7692). The
/// module fills it from its `SwiftWebSocketDeflate*` directives; a handler
/// may turn it off or restrict it in `extraHandshake`.
///
/// Memory per connection, while a message is being compressed or
/// decompressed (zlib's own figures): the compressor takes
/// 2^(windowBits+2) + 2^(memoryLevel+9) bytes, the decompressor
/// 2^clientWindowBits + about 7 KiB. The defaults (12 / 5 / 12, the choice
/// the Python websockets library documents) come to about 32 KiB + 11 KiB,
/// against 256 KiB + 39 KiB at zlib's defaults (15 / 8 / 15).
public struct DeflateOptions: Sendable, Equatable {
    public var isEnabled: Bool
    /// The window for what the server sends, 9...15 (2^bits bytes); lower
    /// if the client asks. zlib cannot compress with a window of 8.
    public var serverMaxWindowBits: Int
    /// The window the server asks clients to use when they let it choose
    /// (they offer `client_max_window_bits`), 9...15.
    public var clientMaxWindowBits: Int
    /// zlib's memLevel, 1...9: memory for the compressor's hash table.
    public var memoryLevel: Int
    /// zlib's level, 0 (store) ... 9 (smallest).
    public var compressionLevel: Int
    /// Messages shorter than this are sent uncompressed: compressing them
    /// costs more time than the bytes it saves.
    public var minimumSize: Int

    public init(isEnabled: Bool = true, serverMaxWindowBits: Int = 12, clientMaxWindowBits: Int = 12,
                memoryLevel: Int = 5, compressionLevel: Int = 6, minimumSize: Int = 64) {
        self.isEnabled = isEnabled
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
        self.memoryLevel = memoryLevel
        self.compressionLevel = compressionLevel
        self.minimumSize = minimumSize
    }

    /// Accepts the first permessage-deflate offer in `header` (the request's
    /// `Sec-WebSocket-Extensions`) that these options can honour. Returns the
    /// agreed parameters and the response header value, or nil to decline.
    /// Offers with unknown, repeated or malformed parameters are declined,
    /// as are those asking for a server window of 8.
    public func negotiate(_ header: String?) -> (PerMessageDeflate, response: String)? {
        guard isEnabled, let header, let offers = ExtensionOffer.parse(header) else { return nil }
        for offer in offers where offer.name.lowercased() == "permessage-deflate" {
            if let agreed = accept(offer) { return agreed }
        }
        return nil
    }

    private func accept(_ offer: ExtensionOffer) -> (PerMessageDeflate, response: String)? {
        var serverNoContextTakeover = false
        var clientNoContextTakeover = false
        var requestedServerWindow: Int?
        var clientWindowOffered = false
        var offeredClientWindow: Int?
        var seen: Set<String> = []
        for parameter in offer.parameters {
            let name = parameter.name.lowercased()
            guard seen.insert(name).inserted else { return nil }
            switch (name, parameter.value) {
            case ("server_no_context_takeover", nil): serverNoContextTakeover = true
            case ("client_no_context_takeover", nil): clientNoContextTakeover = true
            case ("server_max_window_bits", let value?):
                guard let bits = Self.windowBits(value) else { return nil }
                requestedServerWindow = bits
            case ("client_max_window_bits", nil): clientWindowOffered = true
            case ("client_max_window_bits", let value?):
                guard let bits = Self.windowBits(value) else { return nil }
                clientWindowOffered = true
                offeredClientWindow = bits
            default: return nil
            }
        }
        let serverWindow = min(Self.clamped(serverMaxWindowBits), requestedServerWindow ?? 15)
        guard serverWindow >= 9 else { return nil }
        // Without the client's leave to choose, it may use the whole window.
        let clientWindow = clientWindowOffered
            ? min(Self.clamped(clientMaxWindowBits), offeredClientWindow ?? 15) : 15

        var response = "permessage-deflate"
        if serverNoContextTakeover { response += "; server_no_context_takeover" }
        if clientNoContextTakeover { response += "; client_no_context_takeover" }
        if requestedServerWindow != nil { response += "; server_max_window_bits=\(serverWindow)" }
        if clientWindowOffered { response += "; client_max_window_bits=\(clientWindow)" }
        let agreed = PerMessageDeflate(
            serverWindowBits: serverWindow, clientWindowBits: clientWindow,
            serverNoContextTakeover: serverNoContextTakeover, clientNoContextTakeover: clientNoContextTakeover,
            memoryLevel: min(max(memoryLevel, 1), 9), compressionLevel: min(max(compressionLevel, 0), 9),
            minimumSize: max(minimumSize, 0))
        return (agreed, response)
    }

    /// RFC 7692 7.1.2: an integer 8...15 without leading zeros.
    private static func windowBits(_ value: String) -> Int? {
        guard let bits = Int(value), (8...15).contains(bits), String(bits) == value else { return nil }
        return bits
    }

    private static func clamped(_ bits: Int) -> Int { min(max(bits, 9), 15) }
}

/// permessage-deflate as agreed for one connection.
public struct PerMessageDeflate: Sendable, Equatable {
    /// Our compression window, 9...15.
    public var serverWindowBits: Int
    /// The client's compression window, so our decompression window, 8...15.
    public var clientWindowBits: Int
    public var serverNoContextTakeover: Bool
    public var clientNoContextTakeover: Bool
    public var memoryLevel: Int
    public var compressionLevel: Int
    public var minimumSize: Int
}
