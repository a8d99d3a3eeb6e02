"""The webhook relay: status events fanned out to each client's HTTP endpoints, signed, retried, in order."""
