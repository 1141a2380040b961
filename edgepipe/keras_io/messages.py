"""One line out of the long, multi-line errors TensorFlow and Keras raise, for an InputError's ``found``."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Keras prints parts of its messages in bold
_CALLING = "Exception encountered when calling "


def keras_reason(exc: BaseException, limit: int = 300) -> str:
    """``Type: what went wrong`` on one line.

    Keras echoes a whole layer config before the cause of a deserialization
    error, and puts the cause of a layer-call error on the line after "when
    calling X"; both are reduced to the cause.
    """
    text, marker = _ANSI.sub("", str(exc)), "Exception encountered:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith(_CALLING):
        lines = [f"{lines[0][len(_CALLING):].rstrip('.')}: {lines[1]}"]
    return f"{type(exc).__name__}: {lines[0][:limit] if lines else ''}"
