"""Lists of texts written as JSON or as Python literals ("['Action', \"Director's Cut\"]"), parsed in linear time.

Why not `ast.literal_eval`: the scraped MAL tables store lists in Python's repr, and the same parser reads what a
client sends. `ast` builds a whole syntax tree first: a 4.9 MB literal cost 570 MB of memory, and CPython's
parser is not safe across the scoring threads (a concurrent one failed with "AST constructor recursion depth
mismatch"). A list of quoted texts needs none of that: one pass over the characters, no nesting, no evaluation.
"""

from __future__ import annotations

_QUOTES = ("'", '"')
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r", "0": "\0", "/": "/", "b": "\b",
            "f": "\f"}
_HEX_DIGITS = {"x": 2, "u": 4, "U": 8}


class ListSyntaxError(ValueError):
    """Text that is not a flat list of quoted texts; the message says where."""


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def _quoted(text: str, at: int) -> tuple[str, int]:
    """The text of the quoted item starting at `at` (a quote) and the index after its closing quote."""
    quote, at, parts = text[at], at + 1, []
    start = at
    while at < len(text):
        char = text[at]
        if char == quote:
            parts.append(text[start:at])
            return "".join(parts), at + 1
        if char == "\\":
            parts.append(text[start:at])
            if at + 1 >= len(text):
                break
            code = text[at + 1]
            if code in _HEX_DIGITS:
                digits = text[at + 2:at + 2 + _HEX_DIGITS[code]]
                try:
                    parts.append(chr(int(digits, 16)))
                except ValueError:
                    raise ListSyntaxError(f"bad escape \\{code}{digits} at character {at}") from None
                at += 2 + _HEX_DIGITS[code]
            else:
                parts.append(_ESCAPES.get(code, "\\" + code))
                at += 2
            start = at
            continue
        at += 1
    raise ListSyntaxError(f"unterminated quote opened at character {start - 1}")


def parse_text_list(text: str) -> list[str | None]:
    """The items of "[...]" holding quoted texts (either quote, JSON's or Python's escapes) or None/null.

    Linear in the length of `text`; raises ListSyntaxError for anything else (numbers, nested lists, dicts)."""
    at = _skip_space(text, 0)
    if at >= len(text) or text[at] != "[":
        raise ListSyntaxError("a list must start with '['")
    items: list[str | None] = []
    at = _skip_space(text, at + 1)
    if at < len(text) and text[at] == "]":
        at += 1
    else:
        while True:
            if at < len(text) and text[at] in _QUOTES:
                item, at = _quoted(text, at)
                items.append(item)
            elif text.startswith("None", at) or text.startswith("null", at):
                items.append(None)
                at += 4
            else:
                raise ListSyntaxError(f"expected a quoted text at character {at}")
            at = _skip_space(text, at)
            if at < len(text) and text[at] == ",":
                at = _skip_space(text, at + 1)
                if at < len(text) and text[at] == "]":  # a trailing comma, as Python allows
                    at += 1
                    break
                continue
            if at < len(text) and text[at] == "]":
                at += 1
                break
            raise ListSyntaxError(f"expected ',' or ']' at character {at}")
    if _skip_space(text, at) != len(text):
        raise ListSyntaxError(f"text after the list's closing ']' at character {at}")
    return items
