"""Pure order logic: states, transitions and the ONE Order derivation. No I/O, no clock."""
