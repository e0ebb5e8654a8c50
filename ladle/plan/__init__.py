"""Plans: every change to a host is a list of typed steps that can render and undo themselves."""

from ladle.plan.executor import Executor
from ladle.plan.runner import Runner, SubprocessRunner
from ladle.plan.steps import Context, Step

__all__ = ["Context", "Executor", "Runner", "Step", "SubprocessRunner"]
