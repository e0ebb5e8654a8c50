"""One exception hierarchy; the CLI turns each into a single line on stderr and an exit code."""


class LadleError(Exception):
    """A failure the user can understand and act on; never shown with a traceback."""

    exit_code = 1


class UsageError(LadleError):
    """Bad input: a name, path, value or combination of options."""

    exit_code = 2


class NotFound(LadleError):
    """A pot, base, fscomp or snapshot that does not exist."""


class Exists(LadleError):
    """Something with that name already exists."""


class Busy(LadleError):
    """Another ladle command holds the lock, or the object is in use."""


class StateError(LadleError):
    """The object is in the wrong state for this verb (e.g. running)."""


class HostError(LadleError):
    """A host command or system call failed."""


class CommandFailed(HostError):
    """A host command exited non-zero; the message carries its stderr."""

    def __init__(self, argv: list[str], code: int, stderr: str) -> None:
        self.argv = argv
        self.code = code
        self.stderr = stderr
        last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {code}"
        super().__init__(f"{argv[0]} failed: {last}")
