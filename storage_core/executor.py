"""The one way storage_core runs host commands: argv lists, never a shell.

Everything that runs a command takes an executor, so tests can hand in
:class:`storage_core.fakes.RecordingExecutor` and read the argv back.
"""

import logging
from dataclasses import dataclass

from oslo_concurrency import processutils

from storage_core.errors import CommandError

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandResult:
    stdout: str
    stderr: str
    exit_code: int


class Executor:
    """Runs argv through oslo.concurrency's processutils."""

    def run(self, argv, ok_exit_codes=(0,), timeout=None) -> CommandResult:
        """Run argv; an exit code outside ok_exit_codes raises CommandError."""
        argv = [str(a) for a in argv]
        LOG.debug("running %s", argv)
        try:
            stdout, stderr = processutils.execute(
                *argv,
                # processutils hides which accepted code it saw, so accept only 0
                # here and sort the others out below.
                check_exit_code=[0],
                timeout=timeout,
            )
            return CommandResult(stdout, stderr, 0)
        except processutils.ProcessExecutionError as exc:
            if exc.exit_code in ok_exit_codes:
                return CommandResult(exc.stdout or "", exc.stderr or "", exc.exit_code)
            raise CommandError(argv, exc.exit_code, exc.stdout or "", exc.stderr or "") from exc
        except OSError as exc:
            raise CommandError(argv, -1, "", str(exc)) from exc
