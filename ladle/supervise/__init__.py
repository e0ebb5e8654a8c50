"""Supervision: the process that owns a running pot, its pid 1, exit status and logs.

Modules, one concern each (import them directly; this package imports nothing, so the CLI pays
nothing for it):

- `daemon`: start a detached supervisor and wait until it reports the pot running, or why not;
- `supervisor`: the supervisor's body (log, `runs` rows, wait for pid 1) and its foreground twin;
- `init`: the mini-init that serves as a pot's pid 1;
- `runs`: the rows of the `runs` table a supervisor writes;
- `pidfd`: waiting for and signalling processes by pidfd, with pid-reuse checks;
- `logs`: `ladle logs -f`, following a log with inotify;
- `tty`: relaying a pseudo-terminal (`ladle exec -t`).
"""
