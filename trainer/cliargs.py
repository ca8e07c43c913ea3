"""argparse value types shared by the command lines, so every CLI rejects bad numbers alike."""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"  # argparse names the type in its messages
    return parse


def number(positive: bool) -> Callable[[str], float]:
    """A finite float, > 0 when `positive`, else >= 0."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(f"must be {'> 0' if positive else '>= 0'}, got {text}")
        return value

    parse.__name__ = "positive number" if positive else "non-negative number"
    return parse


def frame_size(at_least: int) -> Callable[[str], tuple[int, int]]:
    """"WIDTHxHEIGHT" -> (w, h), each side at least `at_least`."""

    def parse(text: str) -> tuple[int, int]:
        try:
            w, h = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
        if w < at_least or h < at_least:
            raise argparse.ArgumentTypeError(f"{text}: {at_least}x{at_least} at least")
        return w, h

    parse.__name__ = "WIDTHxHEIGHT"
    return parse
