"""Pure order logic: states, transitions and the ONE Order derivation. No I/O, no clock.

- `decide`: the one entry point, `decide(order, input, context) -> Decision`; it picks the handler.
- `transitions`: the legal status changes per order type, and the rules that follow every change.
- `outcome`: `Decision` (what one input decides), `change_status` and `reject`, which build the events.
- `prebooking` (with the waitlist), `cancellation`, `redemption`, `walk_in`, `suspension`, `no_show`: the
  handlers, one module per flow.
- `reservations`: reserve and release requests, and the withdrawal of an item.
- `reasons`: the anomaly codes and the reasons of status events and releases.
- `local_effects`: the effects outside the order a decision asks for (timers, refunds, index, anomaly log).
- `order`, `one_order`: the stored order and the ONE Order view derived from it.
- `policy`, `retention`: per-deployment rules, and how long a stored order is kept.

Every handler treats its input the same way: it checks its guards on the order it was given, untouched,
and returns a rejection, an anomaly or `Decision.nothing()` without copying it. Only a path that changes
the order clones it, once (`updated = order.clone()`), changes the clone and returns it as
`Decision.order`. Helpers that change an order in place (`change_status`, `withdraw`, the `_..._in_place`
ones) are given that clone, never the caller's order.
"""
