import Synchronization

/// A set of connections that receive the same messages: a chat room, a
/// feed's subscribers. Safe from any thread.
///
/// A named group is one membership per name: every `WebSocketGroup(named:)`
/// with the same name in a process is the same group, and with
/// `SwiftWebSocketBroker` set it spans every child of every httpd sharing
/// the broker (Redis): a broadcast reaches all its members wherever they
/// are connected, at most once each, all members in the same order while
/// the broker keeps up (see the README's "Scaling out").
/// Without a broker a named group holds the members of its own process.
/// Keep one in a handler property; an event handler joins in `onOpen` and
/// leaves in `onClose`:
///
/// ```swift
/// struct Chat: WebSocketEventHandler {
///     var room = WebSocketGroup(named: "lobby")
///     func onOpen(_ connection: WebSocketConnection) { room.join(connection) }
///     func onMessage(_ message: Message, from connection: WebSocketConnection) throws { try room.broadcast(message) }
///     func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String) { room.leave(connection) }
/// }
/// ```
///
/// `WebSocketGroup()` makes a group of its own, never shared between
/// processes. A blocking handler joins in `transferData` and leaves when
/// it ends:
///
/// ```swift
/// struct Chat: WebSocketHandler {
///     static let room = WebSocketGroup()
///     func transferData(_ socket: WebSocket) throws {
///         Self.room.join(socket)
///         defer { Self.room.leave(socket) }
///         while let message = try socket.receive() { try Self.room.broadcast(message) }
///     }
/// }
/// ```
public final class WebSocketGroup: Sendable {
    /// The name of a named group; nil for one made with `init()`.
    public let name: String?
    /// An unnamed group's members; a named one's are `NamedGroups`'.
    private let ownMembers: Mutex<GroupMembers>?

    /// A group of its own, in this process only.
    public init() {
        name = nil
        ownMembers = Mutex(GroupMembers())
    }

    /// The group called `name`: the same members as every other group of
    /// that name, across processes and servers when a broker is configured.
    public init(named name: String) {
        self.name = name
        ownMembers = nil
        NamedGroups.noteUse(of: name)
    }

    public func join(_ member: any MessageRecipient) {
        if let name {
            NamedGroups.join(name, member)
        } else {
            ownMembers?.withLock { _ = $0.insert(member) }
        }
    }

    public func leave(_ member: any MessageRecipient) {
        if let name {
            NamedGroups.leave(name, member)
        } else {
            ownMembers?.withLock { _ = $0.remove(member) }
        }
    }

    /// Members in this process.
    public var count: Int {
        if let name { return NamedGroups.count(of: name) }
        return ownMembers?.withLock { $0.count } ?? 0
    }

    /// Sends `message` to every member. Never waits for a slow member or a
    /// broker: each member's own driving thread writes (see
    /// `WebSocketConnection`), and a member that is closed or too far
    /// behind is dropped from the group. A named group's message goes
    /// through its broker channel, this process's members included (so all
    /// see one order); while the broker is unreachable it reaches this
    /// process's members only. Returns how many of this process's members
    /// it is for; throws `WebSocketError.messageTooBig` for a named group's
    /// message larger than `SwiftWebSocketMaxMessageSize`.
    @discardableResult
    public func broadcast(_ message: Message) throws -> Int {
        if let name { return try NamedGroups.broadcast(message, to: name) }
        return GroupMembers.deliver(message, to: ownMembers?.withLock { $0.recipients } ?? []) { member in
            leave(member)
        }
    }
}

/// What a `WebSocketGroup` holds: a `WebSocketConnection` or a `WebSocket`,
/// both sendable to from any thread.
public protocol MessageRecipient: AnyObject, Sendable {
    func send(_ message: Message) throws
}

extension WebSocket: MessageRecipient {}
extension WebSocketConnection: MessageRecipient {}

/// A recipient that takes a broadcast's message as one shared object.
protocol SharedMessageRecipient {
    func send(_ shared: SharedMessage) throws
}

extension WebSocket: SharedMessageRecipient {}
extension WebSocketConnection: SharedMessageRecipient {}

/// One group's members in this process.
struct GroupMembers {
    private var members: [ObjectIdentifier: any MessageRecipient] = [:]

    var count: Int { members.count }
    var isEmpty: Bool { members.isEmpty }
    var recipients: [any MessageRecipient] { Array(members.values) }

    /// Returns whether `member` is new.
    @discardableResult
    mutating func insert(_ member: any MessageRecipient) -> Bool {
        members.updateValue(member, forKey: ObjectIdentifier(member)) == nil
    }

    /// Returns whether `member` was one.
    @discardableResult
    mutating func remove(_ member: any MessageRecipient) -> Bool {
        members.removeValue(forKey: ObjectIdentifier(member)) != nil
    }

    /// Queues `message` for each recipient, framed and compressed once for
    /// all (`SharedMessage`) where the recipient is one of ours; `drop` is
    /// called for those that refused it (closed, or too far behind).
    /// Returns how many took it.
    static func deliver(_ message: Message, to recipients: [any MessageRecipient],
                        drop: (any MessageRecipient) -> Void) -> Int {
        let shared = SharedMessage(message)
        var delivered = 0
        for member in recipients {
            do {
                if let member = member as? any SharedMessageRecipient {
                    try member.send(shared)
                } else {
                    try member.send(message)
                }
                delivered += 1
            } catch {
                drop(member)
            }
        }
        return delivered
    }
}
