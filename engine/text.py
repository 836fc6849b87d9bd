"""Text that must stay on one line: log entries and console reports.

A Linux file name may hold a newline, and OpenCV's reasons sometimes do; one entry of
``peel-segment.log`` was split over several lines, which no reader of the log (or ``grep``) can
tell from several entries.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """``text`` with control characters (newlines included) written as escapes."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), text)
