"""Which volume capabilities fuxi-csi serves.

Volumes are file systems (access type mount), never raw block devices: every
volume is mounted by storage_core. A Cinder volume is on one node at a time;
a Manila share on any number at once.
"""

from fuxi_csi.stubs import csi

Mode = csi.VolumeCapability.AccessMode.Mode
SINGLE_NODE_MODES = frozenset({Mode.SINGLE_NODE_WRITER, Mode.SINGLE_NODE_READER_ONLY,
                               Mode.SINGLE_NODE_SINGLE_WRITER, Mode.SINGLE_NODE_MULTI_WRITER})
READ_ONLY_MODES = frozenset({Mode.SINGLE_NODE_READER_ONLY, Mode.MULTI_NODE_READER_ONLY})


def unsupported(capabilities, backend) -> str | None:
    """Why `capabilities` cannot be served for a volume in `backend`, or None."""
    for cap in capabilities:
        if cap.WhichOneof("access_type") != "mount":
            return ("only file system volumes (access type mount, volumeMode: Filesystem) are served; "
                    "raw block volumes are not")
        mode = cap.access_mode.mode
        if mode == Mode.UNKNOWN:
            return f"an access mode is required; allowed: {', '.join(Mode.keys()[1:])}"
        if backend == "cinder" and mode not in SINGLE_NODE_MODES:
            return (f"access mode {Mode.Name(mode)} needs the volume on several nodes at once; a Cinder volume "
                    "is on one node at a time: use a single-node mode (ReadWriteOnce, ReadWriteOncePod) "
                    "or a Manila StorageClass")
        if cap.mount.mount_flags:
            return (f"mount flags ({', '.join(cap.mount.mount_flags)}) are not supported: storage_core "
                    "mounts every volume with its own options; drop mountOptions")
    return None


def requested_fstype(capabilities) -> str | None:
    """The file system the capabilities name (kubelet's and the provisioner's fs_type), if any."""
    for cap in capabilities:
        if cap.WhichOneof("access_type") == "mount" and cap.mount.fs_type:
            return cap.mount.fs_type
    return None


def read_only(capability, asked) -> bool:
    return asked or capability.access_mode.mode in READ_ONLY_MODES
