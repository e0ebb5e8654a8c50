"""The command boundary: the only place where ladle runs host programs.

The FreeBSD driver is tested here by replacing this class with one that records argv lists and
answers from a table, which is the one fake the project allows.
"""

from ladle.errors import CommandFailed, HostError


class Runner:
    """Runs argv lists; subclasses decide whether for real or recorded."""

    def run(self, argv: list[str], *, input: bytes | None = None, check: bool = True) -> str:
        """Run one command and return its stdout as text."""
        raise NotImplementedError

    def pipeline(self, argvs: list[list[str]]) -> None:
        """Run `a | b | ...`; fail if any of them fails."""
        raise NotImplementedError


class SubprocessRunner(Runner):
    """Runs commands on this host."""

    def run(self, argv: list[str], *, input: bytes | None = None, check: bool = True) -> str:
        import subprocess  # here: most commands never run one, and the import costs 2 ms

        try:
            proc = subprocess.run(argv, input=input, capture_output=True, check=False)
        except FileNotFoundError:
            raise HostError(f"{argv[0]}: command not found") from None
        if check and proc.returncode != 0:
            raise CommandFailed(argv, proc.returncode, proc.stderr.decode(errors="replace"))
        return proc.stdout.decode(errors="replace")

    def pipeline(self, argvs: list[list[str]]) -> None:
        import subprocess

        procs: list[subprocess.Popen[bytes]] = []
        prev = None
        try:
            for i, argv in enumerate(argvs):
                last = i == len(argvs) - 1
                p = subprocess.Popen(argv, stdin=prev, stdout=None if last else subprocess.PIPE,
                                     stderr=subprocess.PIPE)
                if prev is not None:
                    prev.close()
                prev = p.stdout
                procs.append(p)
        except FileNotFoundError as e:
            for p in procs:
                p.kill()
                p.wait()
            raise HostError(f"{e.filename}: command not found") from None
        failed = None
        for argv, p in zip(argvs, procs, strict=False):
            _, err = p.communicate()
            if p.returncode != 0 and failed is None:
                failed = CommandFailed(argv, p.returncode, err.decode(errors="replace"))
        if failed:
            raise failed
