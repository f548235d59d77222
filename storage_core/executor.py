"""The one way storage_core runs host commands: argv lists, never a shell.

Everything that runs a command takes an executor, so tests can hand in
:class:`storage_core.fakes.RecordingExecutor` and read the argv back.

Why subprocess and not oslo.concurrency's processutils: processutils always
passes a preexec_fn, which forces a full fork() of the calling process. In
fuxi-server (openstacksdk and os-brick loaded) that made every blkid, mkfs and
mount cost ~7 ms instead of ~2 ms with the vfork() subprocess uses otherwise,
and a Mount runs three of them. Python's subprocess already restores SIGPIPE
in the child, which is all processutils' preexec_fn does.
"""

import logging
import subprocess
from dataclasses import dataclass

from storage_core.errors import CommandError

LOG = logging.getLogger(__name__)

# No host command of ours may outlive Docker's deadline.
DEFAULT_TIMEOUT = 100.0


@dataclass(frozen=True)
class CommandResult:
    stdout: str
    stderr: str
    exit_code: int


class Executor:
    def run(self, argv, ok_exit_codes=(0,), timeout=DEFAULT_TIMEOUT) -> CommandResult:
        """Run argv; an exit code outside ok_exit_codes raises CommandError."""
        if isinstance(argv, (str, bytes)):
            raise TypeError(f"commands are argv lists, never strings: {argv!r}")
        argv = [str(a) for a in argv]
        LOG.debug("running %s", argv)
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise CommandError(argv, -1, "", f"no answer within {timeout:g} s") from exc
        except OSError as exc:
            raise CommandError(argv, -1, "", str(exc)) from exc
        if done.returncode not in ok_exit_codes:
            raise CommandError(argv, done.returncode, done.stdout, done.stderr)
        return CommandResult(done.stdout, done.stderr, done.returncode)
