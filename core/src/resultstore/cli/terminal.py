"""Showing stored data on a terminal: escape what could drive it, and bound how much is shown.

Anything read from a store was written by whoever can write to the store,
so the command line treats it as text to show, never as terminal control
(escape sequences, carriage returns, bidirectional overrides) or as rich
markup, and shows a bounded preview of values that may be huge or deeply
nested.
"""

from __future__ import annotations

import re
from typing import Any, Final

import attrs
from rich.markup import escape as escape_markup

__all__ = [
    "FULL",
    "PREVIEW",
    "Limits",
    "Preview",
    "json_safe",
    "preview",
    "safe_markup",
    "safe_text",
]

# C0 controls but tab and newline, DEL, C1 controls (U+009B is a CSI on
# 8-bit terminals), the characters that reorder or break text shown to a
# reader (bidi marks, embeddings, overrides and isolates, line and paragraph
# separators), and lone surrogates, which no terminal encoding can write.
_DIRECTIONAL = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_DIRECTIONAL}\ud800-\udfff]")
_UNSAFE_ONE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_DIRECTIONAL}\ud800-\udfff]")
# What JSON output may still hold raw: JSON itself escapes only U+0000-U+001F.
_JSON_UNSAFE = re.compile(f"[\x7f-\x9f{_DIRECTIONAL}\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text: str, *, one_line: bool = False) -> str:
    """``text`` with every character that could drive a terminal shown as an escape
    (``\\x1b``, ``\\u202e``); tabs and newlines stay unless ``one_line``."""
    return (_UNSAFE_ONE_LINE if one_line else _UNSAFE).sub(_escaped, text)


def safe_markup(text: str) -> str:
    """``text`` for a place rich reads as markup: on one line, escaped, with no live tag."""
    return escape_markup(safe_text(text, one_line=True))


def json_safe(text: str) -> str:
    """JSON text with the characters JSON leaves raw written as ``\\uXXXX`` escapes.

    They can only occur inside JSON strings, where the escape means the same.
    """
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


@attrs.frozen
class Limits:
    """How much of a value a preview shows (None: no limit)."""

    #: containers nested deeper than this are shown as ``[... 3 items]``.
    depth: int | None = 6
    #: items shown of each list, tuple, set or dict.
    items: int | None = 50
    #: characters shown of each string (bytes of each bytes value).
    string: int | None = 300
    #: about how many characters the whole preview may take.
    total: int | None = 6000


#: what ``resultstore get`` shows unless asked for ``--full``.
PREVIEW: Final = Limits()
#: everything.
FULL: Final = Limits(depth=None, items=None, string=None, total=None)


class Preview:
    """A stand-in that shows as the text it holds (pretty printers call ``repr``)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __hash__(self) -> int:
        return id(self)


_OPENERS: Final[dict[type[Any], str]] = {dict: "{", list: "[", tuple: "(", set: "{", frozenset: "{"}
_CLOSERS: Final[dict[type[Any], str]] = {dict: "}", list: "]", tuple: ")", set: "}", frozenset: "}"}
# Python refuses to show ints of more than 4300 digits in decimal.
_BIG_INT_BITS: Final = 14_000


class _Budget:
    __slots__ = ("cut", "left")

    def __init__(self, total: int | None) -> None:
        self.left = total
        self.cut = False

    def spend(self, amount: int) -> bool:
        """Take ``amount``; False when the budget was already spent."""
        if self.left is None:
            return True
        if self.left <= 0:
            self.cut = True
            return False
        self.left -= amount
        return True


def _more(count: int, noun: str) -> Preview:
    return Preview(f"... {count:,} more {noun}{'' if count == 1 else 's'}")


def _scalar(value: Any, limits: Limits, budget: _Budget) -> Any:
    kind = type(value)
    if kind is str or kind is bytes or kind is bytearray:
        size = len(value)
        if limits.string is not None and size > limits.string:
            budget.cut = True
            budget.spend(limits.string)
            unit = "chars" if kind is str else "bytes"
            return Preview(f"{value[: limits.string]!r}... ({size:,} {unit})")
        budget.spend(size)
        return value
    if value is None or kind is bool or kind is float:
        budget.spend(5)
        return value
    if kind is int:
        if value.bit_length() > _BIG_INT_BITS:
            budget.cut = True
            return Preview(f"<int of {value.bit_length():,} bits>")
        budget.spend(8)
        return value
    # Anything else (a datetime from msgpack, an object from pickle): its repr, bounded.
    try:
        text = repr(value)
    except Exception as exc:  # a hostile or broken __repr__
        text = f"<{kind.__name__} whose repr failed: {type(exc).__name__}>"
    if limits.string is not None and len(text) > limits.string:
        budget.cut = True
        text = f"{text[: limits.string]}... ({len(text):,} chars)"
    budget.spend(len(text))
    return Preview(safe_text(text))


def _bounded(value: Any, limits: Limits, budget: _Budget, depth: int) -> Any:
    kind = type(value)
    if kind not in _OPENERS:
        return _scalar(value, limits, budget)
    size = len(value)
    if limits.depth is not None and depth >= limits.depth and size:
        budget.cut = True
        noun = "item" if size == 1 else "items"
        return Preview(f"{_OPENERS[kind]}... {size:,} {noun}{_CLOSERS[kind]}")
    shown = size if limits.items is None else min(size, limits.items)
    if kind is dict:
        out: dict[Any, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= shown or not budget.spend(2):
                budget.cut = True
                out[_more(size - index, "item")] = Preview("...")
                break
            shown_key = _bounded(key, limits, budget, depth + 1)
            out[shown_key] = _bounded(item, limits, budget, depth + 1)
        return out
    items: list[Any] = []
    for index, item in enumerate(value):
        if index >= shown or not budget.spend(2):
            budget.cut = True
            items.append(_more(size - index, "item"))
            break
        items.append(_bounded(item, limits, budget, depth + 1))
    if kind is tuple:
        return tuple(items)
    if kind is list:
        return items
    return Preview(f"{{{', '.join(repr(i) for i in items)}}}" if items else f"{kind.__name__}()")


def preview(value: Any, limits: Limits = PREVIEW) -> tuple[Any, bool]:
    """A copy of ``value`` cut to ``limits``, and whether anything was cut.

    Its cost depends on the limits, not on the size or depth of ``value``,
    and every piece of text in it is already escaped for a terminal when
    shown through ``repr`` (as pretty printers do).
    """
    budget = _Budget(limits.total)
    shown = _bounded(value, limits, budget, 0)
    return shown, budget.cut
