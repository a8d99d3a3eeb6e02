"""FastStream consumers: decode a batch, apply it through the store, publish what it decided."""
