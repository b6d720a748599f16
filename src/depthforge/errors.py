"""The one exception type whose message is shown to the user as a single line (file and problem)."""


class DepthforgeError(ValueError):
    """A user-facing error: ``str(e)`` is one line naming the file (or option) and what is wrong with it."""
