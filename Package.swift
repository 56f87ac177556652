// swift-tools-version: 6.0
import PackageDescription

// One dynamic library holds the engine, the handler API and the bridge the C
// module calls. mod_swiftwebsocket.so and every handler link to this single
// copy: two static copies of a Swift module in one process break type
// identity (swiftlang/swift#65859), so nothing here may be built statically.
// The release build leaves out the run-time exclusivity checks on class
// properties: callgrind showed them at about 15% of the instructions of an
// echo (a thread-local access set updated around every property access of
// WebSocket). The compiler still checks statically; debug builds, which run
// the engine tests, keep the run-time checks.
let releaseSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "SwiftWebSocket",
    products: [
        .library(
            name: "SwiftWebSocket",
            type: .dynamic,
            targets: ["WebSocketProtocol", "SwiftWebSocket", "SwiftWebSocketBridge"]
        ),
    ],
    dependencies: [
        // Handlers log through swift-log's Logger; the bridge backs it with
        // Apache's error log.
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
    ],
    targets: [
        // The C ABI between the shim and Swift: one header, no httpd includes.
        .systemLibrary(name: "CSwiftWebSocketABI", path: "CShim/include"),
        // The system zlib, for permessage-deflate.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        // eventfd(2), for waking a connection's thread.
        .systemLibrary(name: "CEventFD", path: "Sources/CEventFD"),
        // The protocol, Sans-I/O: frames, masking, UTF-8, close codes,
        // extensions and permessage-deflate, ServerProtocol, the deadlines.
        // Given bytes and instants, it answers with bytes and deadlines; no
        // threads, no clock, no system library but zlib (and Glibc for
        // zlib's thread-local scratch buffer).
        .target(
            name: "WebSocketProtocol",
            dependencies: ["CZlib"],
            swiftSettings: releaseSettings
        ),
        // The handler API and the drivers (blocking and parked) over the
        // protocol, which it re-exports: a handler imports SwiftWebSocket.
        .target(
            name: "SwiftWebSocket",
            dependencies: ["WebSocketProtocol", .product(name: "Logging", package: "swift-log")],
            swiftSettings: releaseSettings
        ),
        // @_cdecl entry points: handler registry, connection drivers.
        .target(
            name: "SwiftWebSocketBridge",
            dependencies: ["SwiftWebSocket", "CSwiftWebSocketABI", "CEventFD"],
            // The product's soname, so the module and every handler name the
            // one loaded copy however they found it.
            linkerSettings: [.unsafeFlags(["-Xlinker", "-soname=libSwiftWebSocket.so"])]
        ),
        .testTarget(name: "SwiftWebSocketTests", dependencies: ["SwiftWebSocket", "WebSocketProtocol"]),
    ]
)
