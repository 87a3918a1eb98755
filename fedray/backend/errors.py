"""Errors raised inside actors reach the user as fedray's own one-line error, not as a Ray traceback.

A data or input error raised in a client actor (a bad row it decodes, a NaN loss) travels back as a
``RayTaskError`` wrapping it, nested once per actor hop (client actor -> server actor -> driver). An error
raised in an actor's constructor is worse: Ray keeps only its text (``ActorDiedError`` with
``actor_init_failed``). :func:`user_error` recovers the original error in both cases.
"""

from __future__ import annotations

import re

from ray.exceptions import ActorDiedError, RayError, RayTaskError

from fedray.config import ConfigError
from fedray.data.decode import DataError
from fedray.training.finite import NonFiniteError

USER_ERRORS = (DataError, NonFiniteError, ConfigError)  # bad input or a diverged run: exit 2, one line
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The last line of a Python traceback: "fedray.data.decode.DataError: client 3: dataset file ..."
_LAST_LINE = re.compile(r"^(?:[\w.]+\.)?(DataError|ConfigError|NonFiniteError): (.+)$", re.M)


def user_error(err: BaseException) -> BaseException | None:
    """The fedray error (:data:`USER_ERRORS`) that a Ray error wraps, or None if it wraps something else."""
    seen: BaseException | None = err
    for _ in range(16):  # one RayTaskError per actor hop
        if seen is None:
            return None
        if isinstance(seen, USER_ERRORS) and not isinstance(seen, RayError):
            return seen
        if isinstance(seen, RayTaskError):  # RayTaskError(DataError) is also a DataError: take the original
            seen = seen.cause
            continue
        if isinstance(seen, ActorDiedError) and seen.actor_init_failed:
            return _from_text(seen.error_msg)
        return None
    return None


def reraise_user_error(err: BaseException) -> None:
    """Raise the wrapped fedray error of ``err`` (without Ray's wrapping or traceback), if there is one."""
    found = user_error(err)
    if found is not None:
        raise found from None


def _from_text(message: str) -> BaseException | None:
    """Rebuild a constructor's error from the traceback text Ray kept (its last ``Type: message`` line)."""
    matches = _LAST_LINE.findall(_ANSI.sub("", message))
    if not matches:
        return None
    kind, text = matches[-1]
    return ConfigError(text) if kind == "ConfigError" else DataError(text)
