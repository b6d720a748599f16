"""The one exception type whose message is shown to the user as a single line (file and problem), and the one
way to quote another library's exception in such a line."""


class DepthforgeError(ValueError):
    """A user-facing error: ``str(e)`` is one line naming the file (or option) and what is wrong with it."""


def error_line(e: BaseException, limit: int | None = 200, skip: tuple[str, ...] = (), whole: bool = False) -> str:
    """``e``'s message as one line, cut to ``limit`` characters: its first line that says something (blank lines
    are passed over, and so are lines starting with ``skip`` — where a library says where it raised, not what is
    wrong — unless nothing else is left), or with ``whole`` the whole message joined (for libraries that wrap one
    sentence over lines); ``e``'s type name when the message is empty."""
    lines = [" ".join(str(e).split())] if whole else [line.strip() for line in str(e).splitlines()]
    lines = [line for line in lines if line]
    said = [line for line in lines if not line.startswith(skip)]
    return (said or lines or [type(e).__name__])[0][:limit]
