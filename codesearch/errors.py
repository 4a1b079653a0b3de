"""User-facing errors (the CLI prints them as one line and exits with status 2) and the value
checks that config sections and sampler options share: each ``ValueError`` names its key."""

from __future__ import annotations

import math


class UserError(Exception):
    """Bad input or configuration that the user can fix; never shown with a traceback."""


class DataError(UserError):
    """A bad record or file, located by path, line (1-based) and field where known."""

    def __init__(
        self,
        message: str,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ):
        self.path, self.line, self.field, self.reason = path, line, field, message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        what = f"field '{field}': " if field is not None else ""
        super().__init__(f"{where}{what}{message}")


def check_number(
    key: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    optional: bool = False,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """ValueError unless ``value`` is a finite number within [low, high] (open ends where
    asked), or None when ``optional``."""
    if value is None and optional:
        return
    if high is None:
        bounds = f"{'>' if low_open else '>='} {low}"
    else:
        bounds = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if (
        not number
        or not math.isfinite(value)
        or (low is not None and (value <= low if low_open else value < low))
        or (high is not None and (value >= high if high_open else value > high))
    ):
        raise ValueError(
            f"{key} must be a finite number {bounds}{' or null' if optional else ''}; got {value!r}"
        )


def check_choice(key: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
