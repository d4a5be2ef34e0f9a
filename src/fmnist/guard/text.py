"""Text from outside (file names, messages quoting them) made safe to print on one line of a terminal."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with control characters (a newline, an escape sequence) and the bytes of a file name that
    are not UTF-8 written as Python escapes (``\\n``, ``\\x1b``, ``\\xff``); printable text is unchanged."""
    if text.isprintable():
        return text
    out = []
    for character in text:
        code = ord(character)
        if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for a byte that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif character.isprintable():
            out.append(character)
        else:
            out.append(character.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return "".join(out)
