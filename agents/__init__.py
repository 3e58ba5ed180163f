"""The lifecycle fold (pure) and the Faust agents that drive it: decode, fold, emit, write."""
