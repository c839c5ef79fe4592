"""Tools a GPT can call: built-ins, sandboxed Python, dotted-path functions and OpenAPI actions."""
