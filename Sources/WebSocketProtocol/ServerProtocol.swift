/// The server side of RFC 6455 data transfer, Sans-I/O: bytes from the
/// client go in through `receive(_:)`, events come out of `nextEvent()`, and
/// the bytes to send (pongs, close frames) wait in `pendingOutput`. It never
/// touches a socket, so the blocking driver, the event-MPM driver and the
/// tests all run the same code.
///
/// Payload bytes are unmasked straight from the caller's buffer into the
/// message being assembled; only a frame header split across reads is copied
/// aside. With an extension (permessage-deflate), a marked message's payload
/// is unmasked into a scratch buffer and decoded into the message by the
/// extension (`MessageExtension`), and what is sent is encoded by it.
///
/// Its extension owns zlib streams when compression is agreed: use one
/// value per connection and do not copy it (copies would share them).
public struct ServerProtocol {
    public enum State: Equatable, Sendable {
        case open
        /// We sent a close frame and wait for the peer's.
        case closeSent
        /// The peer's close frame arrived and ours is owed: answer with
        /// `close(code:reason:)`. Only an unfinished fragmented message may
        /// still be completed (RFC 6455 5.5.1).
        case closeReceived
        /// Close handshake complete or connection failed: flush
        /// `pendingOutput`, then close the TCP connection.
        case closed
    }

    public enum Event: Equatable, Sendable {
        case message(Message)
        /// A ping arrived; its pong is already in `pendingOutput`.
        case ping([UInt8])
        case pong([UInt8])
        /// The peer's close frame arrived. `code` is nil when it carried none.
        /// Once this event is taken the state is `.closed` if we had sent a
        /// close already, else `.closeReceived`: the driver chooses the
        /// reply's code (the peer's, or the handler's pick) and calls
        /// `close(code:reason:)`.
        case close(code: CloseCode?, reason: String)
        /// The peer broke the protocol. Once this event is taken, a close
        /// frame with the matching code is in `pendingOutput`, the state is
        /// `.closed`, and the connection must be dropped.
        case failed(ProtocolViolation)
    }

    public private(set) var state: State = .open
    public let limits: Limits
    /// permessage-deflate as agreed in the handshake, or nil (also when
    /// another extension was given, `init(limits:messageExtension:)`).
    public let compression: PerMessageDeflate?
    /// Bytes to write to the client, in order. The driver sends them and
    /// calls `pendingOutput.removeAll(keepingCapacity: true)`.
    public var pendingOutput: [UInt8] = []

    private enum ReadState {
        case header
        case payload(FrameHeader, remaining: UInt64, keyOffset: Int)
    }

    private var readState = ReadState.header
    /// A frame header that arrived in pieces.
    private var partialHeader: [UInt8] = []
    /// Opcode of the fragmented message in progress, if any.
    private var messageOpcode: Opcode?
    private var messageBuffer: MessageBuffer
    /// When the message in progress began arriving, as `checkMessage` saw it.
    private var messageStartedAt: MonotonicInstant?
    /// This connection's share of the child's memory budget, if counted.
    private let memory: (any MessageMemory)?
    /// The extension agreed in the handshake (permessage-deflate), if any.
    private let messageExtension: (any MessageExtension)?
    /// Its RSV bits: a data message's first frame has all of them or none.
    private let allowedReservedBits: UInt8
    /// Whether the message in progress has the extension's RSV bits set
    /// (is compressed), so its payload goes through the extension.
    private var messageEncoded = false
    /// Encoded bytes of the message in progress, for its size limit.
    private var encodedCount: UInt64 = 0
    /// Frames of the message in progress so far, for its fragment limit.
    private var fragmentCount = 0
    /// One chunk of encoded payload, unmasked, on its way to the extension.
    private var encodedScratch: [UInt8] = []
    /// The data message being sent in fragments, if one is in progress:
    /// its type and whether it is compressed.
    private var outgoingFragments: (opcode: Opcode, compressed: Bool)?
    /// The compressed (encoded) payload of the frame last prepared by
    /// `prepareMessage` or `prepareFragment`, to be written after its header;
    /// then the driver calls `compressedPayloadWritten()`.
    public private(set) var compressedPayload: [UInt8] = []
    private var controlBuffer: [UInt8] = []
    private var utf8 = UTF8Validator()
    private var events: [Event] = []
    private var nextEventIndex = 0
    /// Set by a close frame or a violation: later input means nothing.
    private var inputEnded = false
    /// Bytes decoded (inflated) so far, for `receive(_:work:)`'s account.
    private var decodedBytes = 0

    /// Told of every message and close frame, each way.
    package var meter: (any TrafficMeter)?

    /// The most message-buffer capacity kept between messages.
    package static let retainedBufferCapacity = 64 * 1024

    public init(limits: Limits = Limits(), compression: PerMessageDeflate? = nil) {
        self.init(limits: limits, compression: compression, memory: nil)
    }

    /// `memory`: the account the message in progress is charged to (the
    /// drivers open one per connection from `MemoryBudget.shared`).
    package init(limits: Limits, compression: PerMessageDeflate?, memory: (any MessageMemory)?) {
        self.init(limits: limits, compression: compression, messageExtension: compression.map(PerMessageDeflateCodec.init),
                  memory: memory)
    }

    /// With an extension other than permessage-deflate.
    package init(limits: Limits, messageExtension: any MessageExtension, memory: (any MessageMemory)? = nil) {
        self.init(limits: limits, compression: nil, messageExtension: messageExtension, memory: memory)
    }

    private init(limits: Limits, compression: PerMessageDeflate?, messageExtension: (any MessageExtension)?,
                 memory: (any MessageMemory)?) {
        self.limits = limits
        self.compression = compression
        self.messageExtension = messageExtension
        self.allowedReservedBits = messageExtension?.reservedBits ?? 0
        self.memory = memory
        self.messageBuffer = MessageBuffer(account: memory)
    }

    // MARK: Input

    /// Parses `bytes`. Events become available through `nextEvent()`. After
    /// a close frame or a violation, further input is ignored.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer) {
        var unbounded = Int.max
        _ = receive(bytes, work: &unbounded)
    }

    /// Parses a prefix of `bytes` and returns its length: all of them, or
    /// fewer once `work` (bytes parsed plus bytes inflated, taken off it)
    /// is spent. A driver sharing a thread between connections passes the
    /// rest later: a few KiB of compressed input can inflate to megabytes,
    /// and one connection's message must not hold a worker from the others.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, work: inout Int) -> Int {
        var index = 0
        do {
            while index < bytes.count && work > 0 && !inputEnded && state != .closed {
                let decodedBefore = decodedBytes
                let consumed = try consume(UnsafeRawBufferPointer(rebasing: bytes[index...]))
                index += consumed
                work -= consumed + (decodedBytes - decodedBefore)
            }
        } catch {
            fail(error)
            return bytes.count  // what follows a violation is ignored
        }
        return index
    }

    public mutating func receive(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { receive($0) }
    }

    /// The next event, or nil when more input is needed.
    ///
    /// A close or a failure takes effect (close frame queued, state
    /// `.closed`) when its event is taken, not when its bytes are parsed: a
    /// message that arrived before it in the same read can still be
    /// answered first, as the peer sent them (Autobahn 3.2, 4.1.3, 5.15).
    public mutating func nextEvent() -> Event? {
        guard nextEventIndex < events.count else { return nil }
        let event = events[nextEventIndex]
        nextEventIndex += 1
        if nextEventIndex == events.count {
            events.removeAll(keepingCapacity: true)
            nextEventIndex = 0
        }
        switch event {
        case .close(let code, let reason):
            meter?.closeReceived(code: code, reason: reason)
            state = state == .open ? .closeReceived : .closed
        case .failed(let violation):
            if state == .open { queueClose(code: violation.closeCode, reason: "") }
            state = .closed
        case .message, .ping, .pong:
            break
        }
        return event
    }

    /// Whether the next event ends the input: the peer's close or a
    /// violation. A driver whose handler answers later (an async handler's
    /// task) lets it answer what came before first.
    public var nextEventEndsInput: Bool {
        guard nextEventIndex < events.count else { return false }
        switch events[nextEventIndex] {
        case .close, .failed: return true
        case .message, .ping, .pong: return false
        }
    }

    /// The transport ended without a close handshake.
    public mutating func connectionLost() {
        state = .closed
        messageBuffer.release()
    }

    /// Consumes a prefix of `bytes` and returns its length (at least one).
    private mutating func consume(_ bytes: UnsafeRawBufferPointer) throws(ProtocolViolation) -> Int {
        switch readState {
        case .header:
            return try consumeHeader(bytes)
        case .payload(let header, let remaining, let keyOffset):
            var take = Int(min(remaining, UInt64(bytes.count)))
            // A slice at a time, so that `work` can stop the parse between
            // slices however much one decodes to.
            if messageEncoded && !header.opcode.isControl, let messageExtension {
                take = min(take, max(1, messageExtension.decodeSlice))
            }
            let chunk = UnsafeRawBufferPointer(rebasing: bytes[0..<take])
            let newOffset = try appendPayload(chunk, of: header, keyOffset: keyOffset)
            if remaining == UInt64(take) {
                readState = .header
                try frameComplete(header)
            } else {
                readState = .payload(header, remaining: remaining - UInt64(take), keyOffset: newOffset)
            }
            return take
        }
    }

    private mutating func consumeHeader(_ bytes: UnsafeRawBufferPointer) throws(ProtocolViolation) -> Int {
        let allowed = allowedReservedBits
        if partialHeader.isEmpty {
            switch try FrameHeader.parseClientFrame(bytes, allowedReservedBits: allowed) {
            case .header(let header, let length):
                try frameStarted(header)
                return length
            case .needMore:
                partialHeader.append(contentsOf: bytes)
                return bytes.count
            }
        }
        // Complete the header a piece at a time: it is at most 14 bytes.
        var taken = 0
        while true {
            let result = partialHeader.withUnsafeBytes { raw in
                Result { () throws(ProtocolViolation) in
                    try FrameHeader.parseClientFrame(raw, allowedReservedBits: allowed)
                }
            }
            switch try result.get() {
            case .header(let header, _):
                partialHeader.removeAll(keepingCapacity: true)
                try frameStarted(header)
                return taken
            case .needMore(let needed):
                let missing = needed - partialHeader.count
                let available = bytes.count - taken
                guard available > 0 else { return taken }
                let step = min(missing, available)
                partialHeader.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[taken..<taken + step]))
                taken += step
            }
        }
    }

    /// Checks a frame against the message in progress before any payload.
    private mutating func frameStarted(_ header: FrameHeader) throws(ProtocolViolation) {
        if !header.opcode.isControl {
            switch (header.opcode, messageOpcode) {
            case (.continuation, nil): throw .unexpectedContinuation
            case (.continuation, _):
                // An extension's RSV bits mark the first frame of a message
                // only (RFC 7692 6.1).
                guard header.reservedBits == 0 else { throw .reservedBitsSet }
            case (_, nil):
                // The parser let through only the extension's bits; it
                // marks a message with all of them.
                guard header.reservedBits == 0 || header.reservedBits == allowedReservedBits else {
                    throw .reservedBitsSet
                }
                messageOpcode = header.opcode
                messageEncoded = header.reservedBits != 0
                encodedCount = 0
                fragmentCount = 0
            default: throw .expectedContinuation
            }
            let limit = UInt64(clamping: limits.maxMessageSize)
            if messageEncoded, let messageExtension {
                // The decoded size is checked while decoding; this bounds
                // the encoded input.
                encodedCount &+= header.payloadLength
                if encodedCount > messageExtension.maxEncodedSize(forMessageLimit: limit) {
                    throw .messageTooBig(limit: limits.maxMessageSize)
                }
            } else if UInt64(messageBuffer.count) &+ header.payloadLength > limit {
                throw .messageTooBig(limit: limits.maxMessageSize)
            }
            fragmentCount += 1
            guard fragmentCount <= limits.maxFragmentsPerMessage else {
                throw .tooManyFragments(limit: limits.maxFragmentsPerMessage)
            }
            if let maxFrameSize = limits.maxFrameSize, header.payloadLength > UInt64(clamping: maxFrameSize) {
                throw .frameTooBig(limit: maxFrameSize)
            }
        }
        if header.payloadLength == 0 {
            try frameComplete(header)
        } else {
            readState = .payload(header, remaining: header.payloadLength, keyOffset: 0)
        }
    }

    private mutating func appendPayload(_ chunk: UnsafeRawBufferPointer, of header: FrameHeader, keyOffset: Int) throws(ProtocolViolation) -> Int {
        let key = header.maskingKey ?? MaskingKey(0, 0, 0, 0)
        if header.opcode.isControl {
            return Self.appendUnmasked(chunk, to: &controlBuffer, key: key, keyOffset: keyOffset)
        }
        if messageEncoded, let messageExtension {
            encodedScratch.removeAll(keepingCapacity: true)
            let newOffset = Self.appendUnmasked(chunk, to: &encodedScratch, key: key, keyOffset: keyOffset)
            let encoded = encodedScratch
            try decode { message, limit in
                encoded.withUnsafeBytes { messageExtension.decode($0, into: &message, limit: limit) }
            }
            if encodedScratch.capacity > Self.retainedBufferCapacity { encodedScratch = [] }
            return newOffset
        }
        let start = messageBuffer.count
        guard let newOffset = messageBuffer.appendUnmasked(chunk, key: key, keyOffset: keyOffset) else {
            throw memoryRefused
        }
        try validateText(from: start)
        return newOffset
    }

    /// Validates the message's bytes from `start` up to `end` (all that
    /// follow if nil), if it is text.
    private mutating func validateText(from start: Int, upTo end: Int? = nil) throws(ProtocolViolation) {
        guard messageOpcode == .text else { return }
        let valid = messageBuffer.bytes.withUnsafeBytes { raw in
            utf8.validate(UnsafeRawBufferPointer(rebasing: raw[start..<(end ?? raw.count)]))
        }
        guard valid else { throw .invalidUTF8 }
    }

    /// Runs one decoding step of the extension onto the message, failing
    /// as soon as the decoded size passes the limit.
    private mutating func decode(_ step: (inout MessageBuffer, Int) -> DecodeOutcome) throws(ProtocolViolation) {
        let start = messageBuffer.count
        let limit = limits.maxMessageSize
        let outcome = step(&messageBuffer, limit)
        // The text decoded is judged before the verdict, up to the limit, as
        // it would have been had a read ended before the problem: the
        // violation reported is the message's first, however it was split.
        decodedBytes &+= max(0, messageBuffer.count - start)
        try validateText(from: start, upTo: min(messageBuffer.count, limit))
        switch outcome {
        case .ok: break
        case .tooBig: throw .messageTooBig(limit: limits.maxMessageSize)
        case .invalid: throw .invalidCompressedData
        case .refused: throw memoryRefused
        case .unavailable: throw .compressionUnavailable
        }
    }

    package static func appendUnmasked(_ chunk: UnsafeRawBufferPointer, to buffer: inout [UInt8], key: MaskingKey, keyOffset: Int) -> Int {
        let start = buffer.count
        buffer.append(contentsOf: chunk)
        return buffer.withUnsafeMutableBytes { raw in
            Masking.unmask(UnsafeMutableRawBufferPointer(rebasing: raw[start...]), key: key, keyOffset: keyOffset)
        }
    }

    private mutating func frameComplete(_ header: FrameHeader) throws(ProtocolViolation) {
        switch header.opcode {
        case .ping:
            let payload = controlBuffer
            controlBuffer.removeAll(keepingCapacity: true)
            if state == .open { queueFrame(opcode: .pong, payload: payload) }
            events.append(.ping(payload))
        case .pong:
            let payload = controlBuffer
            controlBuffer.removeAll(keepingCapacity: true)
            events.append(.pong(payload))
        case .close:
            try closeReceived()
        case .text, .binary, .continuation:
            guard header.fin else { return }
            let wireBytes = messageEncoded ? Int(clamping: encodedCount) : messageBuffer.count
            if messageEncoded, let messageExtension {
                try decode { message, limit in messageExtension.endOfMessage(into: &message, limit: limit) }
                messageEncoded = false
            }
            if state == .open { meter?.received(messageBytes: messageBuffer.count, wireBytes: wireBytes) }
            let message: Message
            if messageOpcode == .text {
                guard utf8.isComplete else { throw .invalidUTF8 }
                message = .text(String(decoding: messageBuffer.bytes, as: UTF8.self))
                // Reuse the buffer for the next text message, unless one
                // large message would otherwise pin its size for the life
                // of the connection.
                messageBuffer.removeAll(keepingCapacityUpTo: Self.retainedBufferCapacity)
            } else {
                message = .binary(messageBuffer.take())
            }
            utf8.reset()
            messageOpcode = nil
            messageStartedAt = nil
            // Data after our close frame is read to reach the peer's close,
            // but no longer delivered.
            if state == .open { events.append(.message(message)) }
        }
    }

    private mutating func closeReceived() throws(ProtocolViolation) {
        let payload = controlBuffer
        controlBuffer.removeAll(keepingCapacity: true)
        var code: CloseCode?
        var reason = ""
        if payload.count == 1 { throw .closePayloadOfOneByte }
        if payload.count >= 2 {
            let raw = UInt16(payload[0]) << 8 | UInt16(payload[1])
            guard CloseCode(raw).isValidOnWire else { throw .invalidCloseCode(raw) }
            let reasonBytes = payload[2...]
            guard UTF8Validator.isValid(reasonBytes) else { throw .invalidUTF8 }
            code = CloseCode(raw)
            reason = String(decoding: reasonBytes, as: UTF8.self)
        }
        inputEnded = true
        events.append(.close(code: code, reason: reason))
    }

    private mutating func fail(_ violation: ProtocolViolation) {
        inputEnded = true
        messageBuffer.release()
        if case .memoryBudgetExhausted = violation { meter?.closedOverMemoryBudget() }
        events.append(.failed(violation))
    }

    /// The budget's refusal, with the code the account says fits.
    private var memoryRefused: ProtocolViolation {
        .memoryBudgetExhausted(closeCode: memory?.revokedCloseCode ?? .messageTooBig)
    }

    /// Fails the connection (1009, or 1013 for an outbox) if the memory
    /// budget took its memory back to make room: the drivers look on every
    /// step, so a connection that holds much and sends nothing more is
    /// closed too.
    public mutating func failIfMemoryRevoked() {
        guard let memory, memory.isRevoked, !inputEnded, state == .open else { return }
        fail(.memoryBudgetExhausted(closeCode: memory.revokedCloseCode))
    }

    /// Whether a message has begun arriving and is not complete.
    public var isReceivingMessage: Bool { messageOpcode != nil && !inputEnded }

    /// Acts, after input, on what the memory budget and the clock say:
    /// fails the connection when the budget took its memory back, or with
    /// 1008 when the message in progress began `timeout` nanoseconds ago
    /// (`SwiftWebSocketMessageTimeout`) and is still incomplete, so a
    /// client dripping a byte at a time cannot hold a buffer forever.
    /// Returns when that message would time out, if one is in progress.
    package mutating func checkMessage(now: MonotonicInstant, timeout: Int64?) -> MonotonicInstant? {
        failIfMemoryRevoked()
        guard let timeout, isReceivingMessage else {
            messageStartedAt = nil
            return nil
        }
        let started = messageStartedAt ?? now
        messageStartedAt = started
        let due = started.advanced(by: timeout)
        guard now < due else {
            fail(.messageTimeout(Duration.nanoseconds(timeout)))
            return nil
        }
        return due
    }

    /// When the message in progress times out, as last checked.
    package func messageDeadline(timeout: Int64?) -> MonotonicInstant? {
        guard let timeout, isReceivingMessage else { return nil }
        return messageStartedAt?.advanced(by: timeout)
    }

    // MARK: Output

    /// Queues a close frame: in `.open` it starts the closing handshake
    /// (then wait for the peer's close), in `.closeReceived` it answers the
    /// peer's and ends the connection. A nil code sends an empty close
    /// frame. False if a close was already sent or the connection is closed.
    /// A reason longer than fits in a control frame (123 bytes) is cut
    /// between scalars.
    @discardableResult
    public mutating func close(code: CloseCode? = .normalClosure, reason: String = "") -> Bool {
        switch state {
        case .open:
            state = .closeSent
        case .closeReceived:
            state = .closed
        case .closeSent, .closed:
            return false
        }
        queueClose(code: code, reason: code == nil ? "" : reason)
        return true
    }

    /// Queues a ping. Payloads over 125 bytes are cut to 125.
    public mutating func ping(_ payload: [UInt8] = []) -> Bool {
        guard state == .open else { return false }
        queueFrame(opcode: .ping, payload: Array(payload.prefix(125)))
        return true
    }

    /// A frame ready to send: write `header`, then `compressedPayload` if
    /// `isCompressed`, else the payload as given.
    public struct OutgoingFrame {
        public var header: EncodedFrameHeader
        public var isCompressed: Bool
    }

    /// The type of the message being sent with `prepareFragment`, while it
    /// is unfinished.
    public var fragmentedMessageOpcode: Opcode? { outgoingFragments?.opcode }

    /// Frames one whole message, compressing it when permessage-deflate was
    /// agreed and it is at least `minimumSize` bytes. Nil once a close was
    /// sent or received, or while a fragmented message is unfinished. A
    /// message zlib cannot compress goes out uncompressed.
    public mutating func prepareMessage(opcode: Opcode, payload: UnsafeRawBufferPointer) -> OutgoingFrame? {
        guard state == .open, outgoingFragments == nil else { return nil }
        if let messageExtension, messageExtension.encodes(byteCount: payload.count),
           messageExtension.encode(payload, endOfMessage: true, into: &compressedPayload) {
            let header = EncodedFrameHeader(fin: true, reservedBits: messageExtension.reservedBits, opcode: opcode,
                                            payloadLength: compressedPayload.count)
            meter?.sent(bytes: payload.count, wireBytes: compressedPayload.count, endsMessage: true)
            return OutgoingFrame(header: header, isCompressed: true)
        }
        meter?.sent(bytes: payload.count, wireBytes: payload.count, endsMessage: true)
        return OutgoingFrame(header: EncodedFrameHeader(fin: true, opcode: opcode, payloadLength: payload.count),
                             isCompressed: false)
    }

    /// A frame of a broadcast's message (`SharedMessage`): its header, then
    /// `compressedPayload` when set, else the message's own bytes.
    package struct SharedFrame {
        package var header: EncodedFrameHeader
        package var compressedPayload: [UInt8]?
    }

    /// Frames a broadcast's message as `prepareMessage` would, with the
    /// compressed form the message made once for every connection that
    /// compresses with the same parameters (`MessageExtension.sharedEncoding`).
    package mutating func prepareShared(_ shared: any SharedPayload) -> SharedFrame? {
        guard state == .open, outgoingFragments == nil else { return nil }
        let message = shared.message
        let opcode = message.opcode, count = message.byteCount
        if let messageExtension, messageExtension.encodes(byteCount: count),
           let payload = messageExtension.sharedEncoding(of: shared) {
            let header = EncodedFrameHeader(fin: true, reservedBits: messageExtension.reservedBits, opcode: opcode,
                                            payloadLength: payload.count)
            meter?.sent(bytes: count, wireBytes: payload.count, endsMessage: true)
            return SharedFrame(header: header, compressedPayload: payload)
        }
        meter?.sent(bytes: count, wireBytes: count, endsMessage: true)
        return SharedFrame(header: EncodedFrameHeader(fin: true, opcode: opcode, payloadLength: count),
                           compressedPayload: nil)
    }

    /// Frames the next fragment of a message sent as it is produced: the
    /// first call starts it with `opcode`, later ones continue it (nil if
    /// their `opcode` differs), the one with `isFinal` ends it. With
    /// permessage-deflate every fragment is compressed, whatever its size,
    /// and the message's compressed bytes are the fragments' concatenation
    /// (RFC 7692 6.1). Nil once a close was sent, or received unless this
    /// continues a message already begun; nil too if zlib fails in the
    /// middle of a message, which then queues a close with 1011.
    public mutating func prepareFragment(opcode: Opcode, payload: UnsafeRawBufferPointer, isFinal: Bool) -> OutgoingFrame? {
        let isFirst = outgoingFragments == nil
        guard outgoingFragments.map({ $0.opcode == opcode }) ?? true,
              state == .open || (state == .closeReceived && !isFirst) else { return nil }
        var compressed = outgoingFragments?.compressed ?? (messageExtension != nil)
        if compressed, let messageExtension,
           !messageExtension.encode(payload, endOfMessage: isFinal, into: &compressedPayload) {
            // Before the first fragment, send this message plain instead. A
            // message half sent cannot be finished: end the connection.
            guard isFirst else {
                outgoingFragments = nil
                close(code: .internalError, reason: "compression failed")
                return nil
            }
            compressed = false
        }
        outgoingFragments = isFinal ? nil : (opcode, compressed)
        meter?.sent(bytes: payload.count, wireBytes: compressed ? compressedPayload.count : payload.count,
                    endsMessage: isFinal)
        let reservedBits = isFirst && compressed ? messageExtension?.reservedBits ?? 0 : 0
        let header = EncodedFrameHeader(fin: isFinal, reservedBits: reservedBits,
                                        opcode: isFirst ? opcode : .continuation,
                                        payloadLength: compressed ? compressedPayload.count : payload.count)
        return OutgoingFrame(header: header, isCompressed: compressed)
    }

    /// The driver wrote `compressedPayload`: its buffer is kept for the next
    /// message, unless one large message would pin its size for the life
    /// of the connection.
    public mutating func compressedPayloadWritten() {
        compressedPayload.removeAll(keepingCapacity: compressedPayload.capacity <= Self.retainedBufferCapacity)
    }

    private mutating func queueClose(code: CloseCode?, reason: String) {
        meter?.closeSent(code: code, reason: reason)
        var payload: [UInt8] = []
        if let code {
            payload = [UInt8(code.rawValue >> 8), UInt8(code.rawValue & 0xFF)]
            payload.append(contentsOf: Self.truncated(reason, toUTF8Count: 123))
        }
        queueFrame(opcode: .close, payload: payload)
    }

    private mutating func queueFrame(opcode: Opcode, payload: [UInt8]) {
        EncodedFrameHeader(fin: true, opcode: opcode, payloadLength: payload.count)
            .withUnsafeBytes { pendingOutput.append(contentsOf: $0) }
        pendingOutput.append(contentsOf: payload)
    }

    /// The longest prefix of `text` that fits in `count` UTF-8 bytes without
    /// splitting a scalar's encoding (so it stays valid UTF-8).
    package static func truncated(_ text: String, toUTF8Count count: Int) -> [UInt8] {
        var result: [UInt8] = []
        for scalar in text.unicodeScalars {
            let encoded = Array(String(scalar).utf8)
            guard result.count + encoded.count <= count else { break }
            result.append(contentsOf: encoded)
        }
        return result
    }
}
