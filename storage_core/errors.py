"""The one exception tree of storage_core.

Every adapter (cloud, os-brick, commands) translates the foreign exceptions it
sees into one of these, so callers need to know only this module. Messages say
what was wrong and what to do about it; they are shown to users verbatim.
"""


class StorageError(Exception):
    """Base of every error storage_core raises on purpose."""


class InvalidInput(StorageError):
    """A name, option or value the caller gave is not acceptable."""


class NotFound(StorageError):
    """The named volume (or attachment, share ...) does not exist."""


class NotOwned(StorageError):
    """The cloud object exists but was not made by us: we never touch it."""


class Conflict(StorageError):
    """The request clashes with the current state (in use, duplicate, mismatch)."""


class AttachRefused(Conflict):
    """The cloud refused to make an attachment (it answered, so none was made):
    there is nothing of this host's to look for, and what a search would find
    is another host's."""


class CloudError(StorageError):
    """The cloud refused or failed a call."""


class AttachUnanswered(CloudError):
    """A request for an attachment got no answer: the cloud may still make the
    attachment, later. The next call on the volume looks for it."""


class Timeout(StorageError):
    """A bounded wait ran out before the cloud or host reached the wanted state."""


class AttachError(StorageError):
    """The host could not connect or disconnect a volume."""


class FilesystemError(StorageError):
    """blkid, mkfs, mount or umount failed."""


class CommandError(StorageError):
    """A host command exited non-zero or could not start."""

    def __init__(self, argv, exit_code, stdout="", stderr=""):
        self.argv = list(argv)
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        detail = (stderr or stdout or "").strip()
        super().__init__(
            f"command {' '.join(self.argv)!r} failed with exit code {exit_code}"
            + (f": {detail}" if detail else "")
        )


class ConfigError(StorageError):
    """The configuration cannot work (no cloud, bad value ...)."""
