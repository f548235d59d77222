"""Mount a Manila share's export on this host: NFS, CephFS (ceph-fuse or the
kernel client) or GlusterFS (FUSE).

Every command is an argv list; option values are checked against what is
allowed before they get near a command, and secrets (a cephx key) go to a
0600 keyring file, never into argv, where any local user could read them.
"""

import logging
import os
import re

from storage_core.errors import CommandError, FilesystemError, InvalidInput

LOG = logging.getLogger(__name__)

# NFS mount options fuxi passes on; anything else is refused before mounting.
_NFS_OPTION_PATTERNS = (
    r"vers=(3|4|4\.0|4\.1|4\.2)",
    r"nfsvers=(3|4|4\.0|4\.1|4\.2)",
    r"proto=(tcp|udp|rdma)",
    r"(timeo|retrans|rsize|wsize|port|actimeo|acregmin|acregmax|acdirmin|acdirmax)=\d{1,7}",
    r"sec=(sys|krb5|krb5i|krb5p)",
    r"hard|soft|intr|nointr|nolock|lock|noatime|nodiratime|relatime|ro|rw|noac|sync|async|_netdev",
)
_NFS_OPTION = re.compile("|".join(f"(?:{p})" for p in _NFS_OPTION_PATTERNS))
_CEPHX_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CEPHX_KEY = re.compile(r"[A-Za-z0-9+/=]{16,128}")


def parse_nfs_options(text) -> list[str]:
    """`vers=4.1,hard` -> ["vers=4.1", "hard"], or InvalidInput naming the bad one."""
    options = [o.strip() for o in (text or "").split(",") if o.strip()]
    for option in options:
        if not _NFS_OPTION.fullmatch(option):
            raise InvalidInput(
                f"NFS mount option {option!r} is not allowed; allowed: vers=/nfsvers= 3, 4, 4.0, "
                "4.1, 4.2; proto=tcp|udp|rdma; timeo, retrans, rsize, wsize, port, ac* =NUMBER; "
                "sec=sys|krb5|krb5i|krb5p; hard, soft, intr, nointr, nolock, lock, noatime, "
                "nodiratime, relatime, ro, rw, noac, sync, async, _netdev"
            )
    return options


def split_cephfs_export(path):
    """'mon1:6789,mon2:6789:/volumes/_nogroup/x' -> ('mon1:6789,mon2:6789', '/volumes/_nogroup/x')."""
    monitors, sep, root = path.partition(":/")
    if not sep or not monitors:
        raise FilesystemError(f"CephFS export {path!r} is not MONITORS:/PATH")
    return monitors, "/" + root


class ShareMounter:
    def __init__(self, executor, filesystems, keyring_dir, nfs_options="vers=4.1",
                 cephfs_client="fuse", ceph_conf=None):
        self._executor = executor
        self._fs = filesystems
        self._keyring_dir = keyring_dir
        self._nfs_options = parse_nfs_options(nfs_options)
        self._cephfs_client = cephfs_client
        # A cluster without cephx (auth none) is reachable only with its conf.
        self._ceph_conf = ceph_conf

    def mount(self, proto, export_path, mountpoint, rule=None) -> None:
        os.makedirs(mountpoint, exist_ok=True)
        argv = self._argv(proto.upper(), export_path, mountpoint, rule)
        try:
            self._executor.run(argv)
        except CommandError as exc:
            raise FilesystemError(
                f"mounting the {proto} share {export_path} at {mountpoint} failed: {exc}"
            ) from exc
        if not self._fs.is_mounted(mountpoint):
            raise FilesystemError(f"{argv[0]} returned but nothing is mounted at {mountpoint}")
        LOG.info("mounted %s share %s at %s", proto, export_path, mountpoint)

    def unmount(self, mountpoint) -> None:
        # FUSE clients (ceph-fuse, glusterfs) leave with their mount; os-brick's
        # RemoteFS disconnect would not unmount at all, so we do it ourselves.
        self._fs.unmount(mountpoint)

    def forget_key(self, rule_id) -> None:
        """Remove the keyring (or secret file) written for an access rule, once it is revoked."""
        for path in (self._keyring_path(rule_id), self._secret_path(rule_id)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def _argv(self, proto, export_path, mountpoint, rule):
        # The export comes from the cloud: one starting with "-" (or holding a
        # control character) would be read as an option of mount or ceph-fuse.
        if not export_path or export_path.startswith("-") or any(ord(c) < 32 for c in export_path):
            raise InvalidInput(f"the cloud gave export path {export_path[:80]!r}, which fuxi will not "
                               "pass to mount: it is empty, starts with '-' or holds control characters")
        if proto == "NFS":
            return ["mount", "-t", "nfs", "-o", ",".join(self._nfs_options), export_path, mountpoint]
        if proto == "GLUSTERFS":
            # host:/volume[/subdir]: the FUSE client mounts a subdirectory itself.
            return ["mount", "-t", "glusterfs", export_path, mountpoint]
        if proto == "CEPHFS":
            if rule is not None and not _CEPHX_ID.fullmatch(rule.access_to or ""):
                raise InvalidInput(f"cephx client id {rule.access_to!r} is not allowed")
            if self._cephfs_client == "kernel":
                return self._kernel_cephfs_argv(export_path, mountpoint, rule)
            monitors, root = split_cephfs_export(export_path)
            argv = ["ceph-fuse"]
            if self._ceph_conf:
                argv += ["-c", self._ceph_conf]
            argv += ["-m", monitors, "-r", root]
            if rule is not None:
                argv += ["--id", rule.access_to]
                if rule.access_key:
                    argv += ["-k", self._write_secret(rule, self._keyring_path(rule.id), keyring=True)]
            return argv + [mountpoint]
        raise InvalidInput(f"share protocol {proto!r} is not supported; allowed: NFS, CEPHFS, GLUSTERFS")

    def _kernel_cephfs_argv(self, export_path, mountpoint, rule):
        # The kernel client takes the monitors and path as they are exported;
        # the key goes in a secret file, never in the options string.
        split_cephfs_export(export_path)
        options = []
        if rule is not None:
            options.append(f"name={rule.access_to}")
            if rule.access_key:
                options.append("secretfile=" + self._write_secret(rule, self._secret_path(rule.id)))
        if self._ceph_conf:
            options.append(f"conf={self._ceph_conf}")
        argv = ["mount", "-t", "ceph", export_path, mountpoint]
        return argv + (["-o", ",".join(options)] if options else [])

    def _keyring_path(self, rule_id):
        return os.path.join(self._keyring_dir, f"{rule_id}.keyring")

    def _secret_path(self, rule_id):
        return os.path.join(self._keyring_dir, f"{rule_id}.secret")

    def _write_secret(self, rule, path, keyring=False) -> str:
        """Write the rule's cephx key, readable by root only: a keyring for
        ceph-fuse, the bare key for the kernel client's secretfile."""
        if not _CEPHX_KEY.fullmatch(rule.access_key):
            raise InvalidInput("the cephx key Manila returned is not a base64 key; refusing to use it")
        os.makedirs(self._keyring_dir, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"[client.{rule.access_to}]\n\tkey = {rule.access_key}\n" if keyring
                    else rule.access_key + "\n")
        return path
