/// What a connection's message in progress is charged to before its buffer
/// grows (in the library above: the connection's account of the child's
/// memory budget, `MemoryAccount`). The protocol asks and is told; it keeps
/// no budget of its own.
package protocol MessageMemory: AnyObject, Sendable {
    /// Takes `bytes` before they are allocated; false when refused (the
    /// connection then fails with 1009).
    func takeForMessage(_ bytes: Int) -> Bool
    func giveFromMessage(_ bytes: Int)
    /// Whether the memory was taken back to make room for others: the
    /// connection must close, with `revokedCloseCode`.
    var isRevoked: Bool { get }
    var revokedCloseCode: CloseCode { get }
}
