"""The shared test and benchmark toolkit: message builders, a topic tap, a webhook receiver, isolated names.

Both `tests/` and `bench/` import it, so neither imports the other. It is development tooling: the wheel
packages only `contracts` and `service`, and the container image copies only those.
"""
