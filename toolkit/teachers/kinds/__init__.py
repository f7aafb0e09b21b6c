"""The teacher kinds, one module each, each a `toolkit.teachers.protocol.Teacher` (listed once, in
`toolkit.teachers.registry.KINDS`). Only light imports at the top: torch and the data come in
`obtain`."""
