/// A property that must hold whatever the input. A violation stops the
/// process (fatalError traps in optimized builds too), so libFuzzer saves
/// the input as a crash artifact.
func invariant(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("invariant violated: \(message())") }
}
