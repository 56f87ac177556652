/// libFuzzer target: the handshake parsing done in Swift, on any header
/// bytes a client sends: the Sec-WebSocket-Extensions grammar
/// (ExtensionOffer.parse), permessage-deflate negotiation
/// (DeflateOptions.negotiate) and UpgradeRequest's header, subprotocol and
/// cookie lookups.
///
/// Input: two bytes of server options, then lines (split at LF) of any
/// bytes, invalid UTF-8 included, as httpd may pass them. A line
/// `name:value` is one of the request's headers; its value, or a line
/// without a colon as a whole, is also parsed and negotiated on its own.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHandshake(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let windows = input.byte(), levels = input.byte()
    // Out-of-range windows and levels too: negotiate clamps them.
    let options = DeflateOptions(serverMaxWindowBits: Int(windows & 15), clientMaxWindowBits: Int(windows >> 4),
                                 memoryLevel: Int(levels & 15), compressionLevel: Int(levels >> 4))
    let lines = input.rest().split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        .map { String(decoding: $0, as: UTF8.self) }

    var headers: [(name: String, value: String)] = []
    for line in lines {
        var value = line
        if let colon = line.firstIndex(of: ":") {
            value = String(line[line.index(after: colon)...])
            headers.append((String(line[..<colon]), value))
        }
        checkParse(value)
        checkNegotiation(value, options)
    }
    checkLookups(UpgradeRequest(resource: "/", headers: headers))
    return 0
}

/// A parsed header holds tokens only, and says the same written back out.
private func checkParse(_ header: String) {
    guard let offers = ExtensionOffer.parse(header) else { return }
    for offer in offers {
        invariant(HTTPSyntax.isToken(offer.name), "extension name \(offer.name.debugDescription) from \(header.debugDescription)")
        for parameter in offer.parameters {
            invariant(HTTPSyntax.isToken(parameter.name) && parameter.value.map(HTTPSyntax.isToken) ?? true,
                      "parameter \(parameter) from \(header.debugDescription)")
        }
    }
    let written = offers.map { offer in
        ([offer.name] + offer.parameters.map { $0.name + ($0.value.map { "=" + $0 } ?? "") }).joined(separator: "; ")
    }.joined(separator: ", ")
    invariant(ExtensionOffer.parse(written) == offers, "\(written.debugDescription) parses otherwise than \(header.debugDescription)")
}

/// An agreement is within what zlib can do, its response is a valid header
/// naming it, and offering that response again agrees the same.
private func checkNegotiation(_ header: String, _ options: DeflateOptions) {
    guard let (agreed, response) = options.negotiate(header) else { return }
    invariant((9...15).contains(agreed.serverWindowBits) && (8...15).contains(agreed.clientWindowBits)
              && (1...9).contains(agreed.memoryLevel) && (0...9).contains(agreed.compressionLevel),
              "agreed \(agreed) for \(header.debugDescription)")
    invariant(HTTPSyntax.isFieldValue(response), "response \(response.debugDescription)")
    let responseOffers = ExtensionOffer.parse(response)
    invariant(responseOffers?.count == 1 && responseOffers?.first?.name == "permessage-deflate",
              "response \(response.debugDescription) is not one permessage-deflate")
    invariant(options.negotiate(response)?.0 == agreed, "response \(response.debugDescription) agrees otherwise")
    invariant(Deflater(windowBits: agreed.serverWindowBits, memoryLevel: agreed.memoryLevel,
                       level: agreed.compressionLevel) != nil, "zlib refuses to compress as agreed: \(agreed)")
    invariant(Inflater(windowBits: agreed.clientWindowBits) != nil, "zlib refuses to inflate as agreed: \(agreed)")
}

/// Lookups agree with one another and return trimmed, non-empty items.
private func checkLookups(_ request: UpgradeRequest) {
    for (name, _) in request.headers {
        let values = request.headerValues(name)
        invariant(!values.isEmpty && request.header(name) == values.first, "lookups of \(name.debugDescription) disagree")
        invariant(request.headerValues(asciiUppercased(name)).count == values.count, "case matters in \(name.debugDescription)")
    }
    for subprotocol in request.requestedSubprotocols {
        invariant(isTrimmedItem(subprotocol) && !subprotocol.contains(Character(",")), "subprotocol \(subprotocol.debugDescription)")
    }
    let cookies = request.cookies
    for (name, value) in cookies {
        invariant(isTrimmedItem(name) && !name.contains(Character(";")) && !name.contains(Character("="))
                  && !value.contains(Character(";")),
                  "cookie \(name.debugDescription)=\(value.debugDescription)")
        invariant(request.cookie(name) == cookies.first { $0.name == name }?.value, "cookie(\(name.debugDescription)) disagrees")
    }
    invariant(request.requestedExtensions == request.header("Sec-WebSocket-Extensions").flatMap(ExtensionOffer.parse) ?? [],
              "requestedExtensions disagrees with the header")
}

/// Not empty, and no space or tab at either end.
private func isTrimmedItem(_ item: String) -> Bool {
    guard let first = item.first, let last = item.last else { return false }
    return ![first, last].contains { $0 == " " || $0 == "\t" }
}

/// `text` with ASCII letters upper-cased and nothing else changed: the case
/// a client may use in header names (full Unicode case mapping can change
/// a name's length, as "ß" to "SS").
private func asciiUppercased(_ text: String) -> String {
    String(decoding: text.utf8.map { (0x61...0x7A).contains($0) ? $0 - 0x20 : $0 }, as: UTF8.self)
}
