/// Where a message's bytes gather as they arrive (unmasked, reassembled,
/// inflated), its growth charged to the child's `MemoryBudget` before the
/// buffer grows. It grows with what arrives, never with what a frame
/// announces: a header claiming 16 MB takes nothing until the bytes come.
package struct MessageBuffer {
    private(set) var bytes: [UInt8] = []
    /// The capacity charged to `account`.
    private var charged = 0
    private let account: (any MessageMemory)?

    package init(account: (any MessageMemory)?) {
        self.account = account
    }

    package var count: Int { bytes.count }

    /// Makes room for `additional` more bytes, growing geometrically as an
    /// array would; false (nothing grown) when the budget refuses.
    private mutating func reserve(_ additional: Int) -> Bool {
        let needed = bytes.count + additional
        guard needed > bytes.capacity else { return true }
        let capacity = max(needed, bytes.capacity * 2)
        if let account {
            guard account.takeForMessage(capacity - charged) else { return false }
            charged = capacity
        }
        bytes.reserveCapacity(capacity)
        return true
    }

    /// Appends `chunk` unmasked with `key` from `keyOffset`; returns the
    /// key offset after it, nil when the budget refuses the room.
    package mutating func appendUnmasked(_ chunk: UnsafeRawBufferPointer, key: MaskingKey, keyOffset: Int) -> Int? {
        guard reserve(chunk.count) else { return nil }
        return ServerProtocol.appendUnmasked(chunk, to: &bytes, key: key, keyOffset: keyOffset)
    }

    /// Hands the whole message over, giving its memory back to the budget
    /// (it is the handler's now).
    package mutating func take() -> [UInt8] {
        defer { release() }
        return bytes
    }

    /// Empties the buffer for the next message, keeping its capacity (and
    /// charge) if it is at most `retained` bytes.
    package mutating func removeAll(keepingCapacityUpTo retained: Int) {
        guard bytes.capacity <= retained else { return release() }
        bytes.removeAll(keepingCapacity: true)
    }

    /// Drops the bytes and their charge.
    package mutating func release() {
        bytes = []
        if charged > 0 { account?.giveFromMessage(charged) }
        charged = 0
    }
}

extension MessageBuffer: InflateOutput {
    package mutating func appendInflated(_ inflated: UnsafeRawBufferPointer) -> Bool {
        guard reserve(inflated.count) else { return false }
        bytes.append(contentsOf: inflated)
        return true
    }
}

/// Where an `Inflater` puts what it makes: false refuses the bytes (the
/// memory budget cannot hold them).
package protocol InflateOutput {
    var count: Int { get }
    mutating func appendInflated(_ inflated: UnsafeRawBufferPointer) -> Bool
}

extension Array: InflateOutput where Element == UInt8 {
    package mutating func appendInflated(_ inflated: UnsafeRawBufferPointer) -> Bool {
        append(contentsOf: inflated)
        return true
    }
}
