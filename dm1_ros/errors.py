"""The root of the errors a user can fix (a bad value, a file in the way, a missing device).

Every dm1_ros error class derives from Dm1Error as well as from the builtin it specializes, so the `dm1` command
prints its message on one line and exits non-zero; any other exception is a bug and keeps its traceback
(`dm1 --debug` shows the traceback of a Dm1Error too)."""


class Dm1Error(Exception):
    pass


def raised_by_interrupt(exc: BaseException) -> bool:
    """True when Ctrl-C caused exc: a KeyboardInterrupt raised inside compiled code (numba, under robosuite's
    controller) comes back out as a SystemError whose cause or context is the KeyboardInterrupt."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
