"""Text that came from files (EXIF strings, file names), made safe to print."""

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """One line of output with its control characters escaped (ESC as \\x1b, a newline as \\n):
    text from files (EXIF Make and Model, file names) must not clear the terminal, set its
    title or split a line."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
