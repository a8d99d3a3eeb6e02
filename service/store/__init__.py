"""Redis: the key layout, the Lua scripts and the repository that uses them."""
