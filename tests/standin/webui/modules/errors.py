"""STAND-IN of ``modules/errors.py`` of WebUI 1.10.1: ``report``, ``display``, ``print_error_explanation``.

Messages go to stderr with the WebUI's ``***`` prefix; the last exceptions are kept in ``exception_records``
(the stand-in keeps the exception objects themselves, so tests can assert on swallowed errors).
"""

import sys
import traceback

exception_records: list = []


def record_exception():
    exc = sys.exc_info()[1]
    if exc is None or (exception_records and exception_records[-1] is exc):
        return
    exception_records.append(exc)
    del exception_records[:-20]


def report(message: str, *, exc_info: bool = False) -> None:
    """Prints ``message`` (and the current traceback when ``exc_info``) to stderr; never raises."""
    record_exception()
    for line in message.splitlines():
        print("***", line, file=sys.stderr)
    if exc_info:
        tb = traceback.format_exc()
        print("\n".join("    " + line for line in tb.splitlines()), file=sys.stderr)
        print("---", file=sys.stderr)


def print_error_explanation(message):
    record_exception()
    lines = message.strip().split("\n")
    width = max(len(line) for line in lines)
    print("=" * width, file=sys.stderr)
    for line in lines:
        print(line, file=sys.stderr)
    print("=" * width, file=sys.stderr)


def display(e: Exception, task, *, full_traceback=False):
    record_exception()
    print(f"{task or 'error'}: {type(e).__name__}", file=sys.stderr)
    print("".join(traceback.TracebackException.from_exception(e).format()), file=sys.stderr)


def display_once(e: Exception, task):
    display(e, task)


def run(code, task):
    try:
        code()
    except Exception as e:
        display(e, task)
