"""Value checks shared by every configuration dataclass (run config and sampler options).

Each raises ``ValueError`` naming the config key (``train.lr``, ``sampler.tbs_quantile``);
``config.apply_overrides`` turns it into a one-line ``UserError`` that also names the source
(a file, a profile or the command line). Plain Python, so importing it costs nothing.
"""

from __future__ import annotations

import math


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
