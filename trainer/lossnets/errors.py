"""Errors raised when a loss network cannot be built."""
from __future__ import annotations


class LossNetUnavailable(RuntimeError):
    """A loss network's weights are missing, unreadable or do not fit the architecture.

    The message names the file or package involved and what to do about it, so the CLIs can show
    it to the user as is instead of a torch traceback.
    """
