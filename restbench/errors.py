"""The two errors a user can fix. Every layer raises them; the CLI prints them on one line."""


class PluginError(Exception):
    """An error a user can fix; the CLI prints its message on one line and exits non-zero."""

    exit_code = 1


class UsageError(PluginError):
    """Bad option or unknown id (exit code 2, like click's own usage errors)."""

    exit_code = 2


def did_you_mean(word: str, valid, shown=None) -> str:
    """``" (did you mean 'a' or 'b'?)"``: the valid names closest to a mistyped ``word``
    (difflib), or ``""`` when none is close. ``shown`` maps a name to how to print it."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(v) for v in valid], n=3, cutoff=0.6)
    if not close:
        return ""
    names = [f"'{shown(c) if shown else c}'" for c in close]
    return " (did you mean " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]) + "?)"
