"""The operator console: a server-rendered web application at ``/console`` for the
people who run payments (docs/console.md)."""
