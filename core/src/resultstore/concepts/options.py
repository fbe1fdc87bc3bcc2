"""Options from a URL query string and keywords, taken layer by layer.

Options come from the URL query string and from keywords to
:func:`resultstore.connect` (keywords win). Each layer (codec, backend)
takes the options it knows; whatever is left over is an error that lists
what is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from resultstore.concepts.errors import ConfigurationError, UnknownOptionError

__all__ = ["MAX_EXPIRES", "Options", "parse_bool", "parse_duration", "parse_expires", "parse_size"]

#: the longest ``expires`` taken: 100 years. Longer is a mistake (a timestamp
#: given as a duration, milliseconds as seconds) that stores refuse later, each
#: in its own way (datetime overflow, integer TTL overflow): ``none`` keeps results.
MAX_EXPIRES = 100 * 365 * 86400.0

T = TypeVar("T")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_NONE = frozenset({"", "none", "never", "null"})


def parse_bool(value: object) -> bool:
    """``True``/``False`` or one of 1/0, true/false, yes/no, on/off."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected a boolean (true/false, 1/0, yes/no), got {value!r}")


def parse_duration(value: object) -> float | None:
    """Seconds as a number, or None (``none``/``never``) for "keep forever"."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in _NONE:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a number of seconds or 'none', got {value!r}")
    try:
        seconds = float(value)  # type: ignore[arg-type]  # str, int, float and timedelta-like all convert or raise
    except (TypeError, ValueError):
        total = getattr(value, "total_seconds", None)
        if total is None:
            raise ValueError(f"expected a number of seconds or 'none', got {value!r}") from None
        seconds = float(total())
    # nan would make every entry expired at once, inf overflows integer TTLs.
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expected a positive, finite number of seconds or 'none', got {value!r}")
    return seconds


def parse_expires(value: object) -> float | None:
    """:func:`parse_duration`, at most :data:`MAX_EXPIRES` (100 years)."""
    seconds = parse_duration(value)
    if seconds is not None and seconds > MAX_EXPIRES:
        raise ValueError(
            f"{value!r} seconds is more than 100 years ({MAX_EXPIRES:.0f} s), the longest "
            f"expiry resultstore takes (was a timestamp or milliseconds given?); use "
            f"expires=none to keep results until they are forgotten"
        )
    return seconds


class Options:
    """Options not yet taken by anyone; :meth:`take` them, then :meth:`finish`."""

    def __init__(self, values: Mapping[str, Any], *, source: str) -> None:
        self._values = dict(values)
        self._source = source
        self._known: list[str] = []

    def take(self, name: str, convert: Callable[[Any], T], default: T) -> T:
        """Remove ``name`` and return it converted, or ``default`` when absent."""
        self._known.append(name)
        if name not in self._values:
            return default
        raw = self._values.pop(name)
        try:
            return convert(raw)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"option {name}={raw!r} for {self._source}: {exc}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def remaining(self) -> dict[str, Any]:
        return dict(self._values)

    def finish(self, also_known: Iterable[str] = ()) -> None:
        """Raise :class:`UnknownOptionError` if any option was not taken."""
        if self._values:
            known = sorted({*self._known, *also_known})
            raise UnknownOptionError(
                f"unknown option(s) {', '.join(sorted(self._values))} for {self._source}; "
                f"accepted: {', '.join(known) or 'none'}"
            )


def parse_size(value: object) -> int | None:
    """A byte count (``1048576``, ``64k``, ``16m``, ``1g``) or None (``none``)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a size in bytes such as 16m, got {value!r}")
    if isinstance(value, int):
        size = value
    else:
        text = str(value).strip().lower()
        if text in _NONE:
            return None
        factor = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(text[-1:], 1)
        number = text[:-1] if factor != 1 else text
        try:
            size = int(float(number) * factor)
        except (ValueError, OverflowError):  # OverflowError: "inf" and the like
            raise ValueError(f"expected a size in bytes such as 16m, got {value!r}") from None
    if size < 0:
        raise ValueError(f"expected a non-negative size, got {value!r}")
    return size
