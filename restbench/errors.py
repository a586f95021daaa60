"""The two errors a user can fix. Every layer raises them; the CLI prints them on one line."""


class PluginError(Exception):
    """An error a user can fix; the CLI prints its message on one line and exits non-zero."""

    exit_code = 1


class UsageError(PluginError):
    """Bad option or unknown id (exit code 2, like click's own usage errors)."""

    exit_code = 2
