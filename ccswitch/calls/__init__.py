"""A call's lifetime: admission, the caller's and the other legs, and the runtime that
feeds the routing engine and carries out its actions."""

from ccswitch.calls.runtime import CallController

__all__ = ["CallController"]
