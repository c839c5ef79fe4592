"""Server logs with personal data masked: a filter on every handler, so no log line keeps an email or card.

Handlers, not loggers: a filter on a logger sees only what is logged on that logger, one on a handler sees
what every logger below it propagates. `mask_logs` is called when the server's app is made (after uvicorn
has set up its own handlers), and covers the handlers there are then and Python's last-resort handler.
"""

from __future__ import annotations

import logging
from typing import Any

from .masking import mask_text


class MaskingFilter(logging.Filter):
    """Masks personal data in every record it sees: the message, its arguments, the traceback and stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record in place; always lets it through."""
        try:
            if isinstance(record.msg, str):
                record.msg = mask_text(record.msg)
            elif record.msg is not None and not isinstance(record.msg, int | float):
                record.msg = _masked_object(record.msg)
            if isinstance(record.args, dict):
                record.args = {key: _masked_arg(arg) for key, arg in record.args.items()}
            elif isinstance(record.args, tuple):
                record.args = tuple(_masked_arg(arg) for arg in record.args)
            if record.exc_info and not record.exc_text:
                # formatted here, masked, and kept: formatters use exc_text when it is set
                record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
            elif record.exc_text:
                record.exc_text = mask_text(record.exc_text)
            if record.stack_info:
                record.stack_info = mask_text(record.stack_info)
        except Exception:  # a log line that cannot be masked must still not take the request down
            record.msg, record.args = "(a log message that could not be masked for personal data was dropped)", None
            record.exc_info = record.exc_text = None
        return True


def _masked_arg(arg: Any) -> Any:
    """A log argument masked: numbers and None keep their type (for %d), anything else is masked as text."""
    if arg is None or isinstance(arg, bool | int | float):
        return arg
    if isinstance(arg, str):
        return mask_text(arg)
    return _masked_object(arg)


def _masked_object(value: Any) -> Any:
    """An object kept as it is unless its text holds personal data; then its masked text."""
    shown, represented = str(value), repr(value)
    masked = mask_text(shown)
    if masked != shown or mask_text(represented) != represented:
        return masked
    return value


def mask_logs() -> None:
    """Put a MaskingFilter on every handler the process has now (each once), and on the last-resort handler.

    Filters on handlers see records propagated from every logger below them, which filters on loggers do not.
    """
    handlers: list[logging.Handler] = list(logging.getLogger().handlers)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            handlers += logger.handlers
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
