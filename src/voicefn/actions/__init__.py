"""Actions: what running a function does (an HTTP request; later sandboxed code, builtins)."""
