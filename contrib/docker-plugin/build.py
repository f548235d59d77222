"""Build fuxi's Docker managed plugin from this machine and hand it to dockerd.

    .venv/bin/python contrib/docker-plugin/build.py [--name fuxi:latest]

No registry and no base image: the plugin's root file system is put together
from what already runs fuxi here, at the same absolute paths, so nothing in it
needs relocating:

* the Python interpreter this script runs under (its base installation: the
  binary and the standard library, without tests, IDLE, tkinter, ensurepip);
* a virtualenv at /opt/fuxi holding fuxi (its packages, as imported now) and
  every distribution fuxi requires, copied file by file from this venv's
  install records, so the plugin runs exactly the versions tested here;
* the commands fuxi runs (mkfs, blkid, mount, losetup, udevadm ...);
* every shared library `ldd` names for any ELF file in the tree.

The tree is then checked from inside (chroot: Python imports fuxi's server
and storage stack, every command starts), config.json is put beside it and
`docker plugin create NAME DIR` runs.  Root is needed for the check and for
dockerd; the work directory is removed afterwards unless --workdir is given.
"""

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG_JSON = HERE / "config.json"
ENTRYPOINT_SOURCE = HERE / "entrypoint.py"

# Inside the plugin.  config.json's entrypoint names these two paths.
VENV = "/opt/fuxi"
ENTRYPOINT = f"{VENV}/entrypoint.py"

# The distribution whose code and requirements go into the plugin.
ROOT_DISTRIBUTION = "fuxi"

# Commands fuxi and the libraries under it run, found on this host's PATH:
COMMANDS = (
    "blkid", "mkfs.ext4", "mkfs.xfs", "mount", "umount",  # storage_core/fs.py
    "resize2fs", "e2fsck", "xfs_growfs",  # storage_core/fs.py grows a file system after an extend
    "fsfreeze",  # storage_core/copies.py freezes a mounted file system around a snapshot
    "losetup",  # the embedded devcloud binds its volumes to loop devices
    "udevadm",  # storage_core/attach/devices.py asks udev to replay block events
    "findmnt", "lsblk", "blockdev",  # os-brick inspects devices and mounts with them
    "grep",  # os-brick greps iscsiadm when imported, and fails without grep
    "sh",  # not needed by fuxi: lets an operator look around inside a running plugin
)
COMMAND_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# How each command is started to prove its libraries load (default: --version).
START_CHECKS = {"mkfs.ext4": ["-V"], "mkfs.xfs": ["-V"], "blkid": ["-V"], "blockdev": ["-V"], "sh": ["-c", "true"],
                "e2fsck": ["-V"], "xfs_growfs": ["-V"], "resize2fs": []}
# Exit statuses of a start check that still prove the libraries loaded (the
# loader's own failure is 127): resize2fs has no version flag and exits 1 after
# printing its usage and version.
START_CHECK_OK = {"resize2fs": (1,)}

# Libraries programs load with dlopen, which ldd cannot see: glibc loads
# libgcc_s to unwind a thread's stack when it is cancelled or exits.
DLOPENED_LIBRARIES = ("libgcc_s.so.1",)

# Host files read at run time: mke2fs takes its defaults from mke2fs.conf (the
# same ext4 features as on the host); the CA bundle serves clouds whose TLS
# certificates the OS trusts (e.g. REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt).
HOST_FILES = ("/etc/mke2fs.conf", "/etc/ssl/certs/ca-certificates.crt")

# Standard-library parts no server uses, dropped to keep the plugin small.
STDLIB_UNUSED = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
                 "site-packages", "dist-packages", "__phello__"}

# Debian merges / into /usr (/lib -> usr/lib ...): library paths ldd prints
# go through these links, so the tree gets the same ones.
MERGED_USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

# Imported from inside the tree before dockerd ever sees it.
SMOKE_IMPORTS = ("fuxi.server", "fuxi.app", "storage_core.factory", "storage_core.devcloud.server",
                 "openstack", "os_brick.initiator.connector", "fuxi_csi.server")
# The same tree as a container image running the CSI driver (--csi-image).
CSI_ENTRYPOINT = [f"{VENV}/bin/python", "-m", "fuxi_csi.server"]


class BuildError(Exception):
    pass


def log(message) -> None:
    print(f"build.py: {message}", file=sys.stderr, flush=True)


# -- the tree ---------------------------------------------------------------------------

class Rootfs:
    """A directory that stands for / inside the plugin."""

    def __init__(self, path: Path):
        self.path = path
        self._real = os.path.realpath(path)

    def at(self, absolute) -> Path:
        """Where the plugin's `absolute` path lives in this tree."""
        target = self.path / str(absolute).lstrip("/")
        # Every link made here is relative, but a link from the host could still
        # lead a copy out of the tree and over a host file: refuse that.
        parent = os.path.realpath(target.parent)
        if parent != self._real and not parent.startswith(self._real + os.sep):
            raise BuildError(f"{absolute} would land outside the plugin tree, at {parent}")
        return target

    def copy_file(self, source, absolute=None) -> Path:
        """Copy `source`'s content (symlinks followed) to the same path in the tree."""
        target = self.at(absolute or source)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy2(source, target)
        return target

    def contains(self, host_path) -> bool:
        real = os.path.realpath(host_path)
        return real == self._real or real.startswith(self._real + os.sep)


def make_skeleton(root: Rootfs) -> None:
    for name in MERGED_USR_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            # Relative, so the link resolves inside the tree here and in the plugin.
            target = os.path.relpath(os.path.join("/", os.readlink(host)), "/")
            (root.path / target).mkdir(parents=True, exist_ok=True)
            os.symlink(target, root.path / name)
    for directory in ("etc/fuxi", "run", "var/lib/fuxi", "root"):
        (root.path / directory).mkdir(parents=True, exist_ok=True)
    tmp = root.path / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    # Python's pwd lookups (home directory, user name) need root to exist.
    (root.path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root.path / "etc/group").write_text("root:x:0:\n")
    # glibc 2.34+ has files and dns built in; nothing else is installed.
    (root.path / "etc/nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")
    for name in HOST_FILES:
        if os.path.exists(name):
            root.copy_file(name)


def copy_python(root: Rootfs) -> Path:
    """The base interpreter and its standard library; returns the interpreter's path."""
    interpreter = Path(os.path.realpath(sys._base_executable))
    root.copy_file(interpreter)
    stdlib = Path(sysconfig.get_path("stdlib"))

    def unused(directory, names):
        if Path(directory) != stdlib:
            return []
        # config-3.11-<arch>: the static library and makefiles for building extensions.
        return [n for n in names if n in STDLIB_UNUSED or n.startswith("config-")]

    shutil.copytree(stdlib, root.at(stdlib), symlinks=False, ignore=unused)
    return interpreter


def make_venv(root: Rootfs, interpreter: Path) -> Path:
    """An empty virtualenv at VENV; returns its site-packages in the tree."""
    venv = root.at(VENV)
    (venv / "bin").mkdir(parents=True)
    os.symlink(interpreter, venv / "bin" / "python")
    (venv / "pyvenv.cfg").write_text(
        f"home = {interpreter.parent}\ninclude-system-site-packages = false\n"
        f"version = {'.'.join(map(str, sys.version_info[:3]))}\n"
    )
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    site.mkdir(parents=True)
    root.copy_file(ENTRYPOINT_SOURCE, ENTRYPOINT)
    return site


def required_distributions(root_name) -> list[importlib.metadata.Distribution]:
    """root_name's requirements, recursively, as installed here (markers
    evaluated for this interpreter, extras followed); the root itself excluded."""
    from packaging.requirements import Requirement  # oslo.utils requires packaging
    from packaging.utils import canonicalize_name

    wanted = [(root_name, frozenset())]
    extras_seen: dict[str, frozenset] = {}
    found = {}
    while wanted:
        name, extras = wanted.pop()
        key = canonicalize_name(name)
        if key in extras_seen and extras <= extras_seen[key]:
            continue
        extras_seen[key] = extras_seen.get(key, frozenset()) | extras
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise BuildError(f"{name} is required but not installed in {sys.prefix}; "
                             "run scripts/install.sh") from None
        if key != canonicalize_name(root_name):
            found[key] = distribution
        for text in distribution.requires or ():
            requirement = Requirement(text)
            environments = [{"extra": e} for e in sorted(extras_seen[key])] or [{"extra": ""}]
            if requirement.marker and not any(requirement.marker.evaluate(e) for e in environments):
                continue
            wanted.append((requirement.name, frozenset(requirement.extras)))
    return [found[k] for k in sorted(found)]


def copy_distribution(distribution, site: Path) -> int:
    """Copy the files its install record lists under site-packages; returns how many."""
    here = Path(sysconfig.get_path("purelib")).resolve()
    if distribution.files is None:
        raise BuildError(f"{distribution.metadata['Name']} has no install record (RECORD); "
                         "reinstall it with pip")
    copied = 0
    for entry in distribution.files:
        source = Path(entry.locate()).resolve()
        # Scripts in bin/ and data files outside site-packages are not needed.
        if not source.is_relative_to(here) or not source.is_file():
            continue
        target = site / source.relative_to(here)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        copied += 1
    if copied == 0:
        raise BuildError(f"{distribution.metadata['Name']} has no files in {here}: this venv must hold "
                         "every distribution fuxi needs (scripts/install.sh)")
    return copied


def copy_root_packages(root_name, site: Path) -> list[str]:
    """The root distribution's top-level packages, from wherever Python imports
    them now (an editable install imports them from the checkout)."""
    distribution = importlib.metadata.distribution(root_name)
    names = (distribution.read_text("top_level.txt") or "").split()
    if not names:
        raise BuildError(f"{root_name}'s metadata lists no top-level packages (top_level.txt)")
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise BuildError(f"package {name} of {root_name} cannot be imported here")
        source = Path(list(spec.submodule_search_locations)[0])
        shutil.copytree(source, site / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return names


def compile_packages(site: Path, names, interpreter_site: str) -> None:
    """Byte-compile the root's packages as the plugin will see them, so its
    first start does not (dockerd gives a plugin ~9 s to open its socket)."""
    import compileall

    for name in names:
        if not compileall.compile_dir(site / name, quiet=1, ddir=f"{interpreter_site}/{name}"):
            raise BuildError(f"byte-compiling {name} failed")


def copy_commands(root: Rootfs) -> None:
    for command in COMMANDS:
        found = shutil.which(command, path=COMMAND_PATH)
        if found is None:
            raise BuildError(f"{command} not found on {COMMAND_PATH}: install it (scripts/install.sh)")
        # By content under the name looked up: mkfs.ext4 is a link to mke2fs,
        # which picks the file system from the name it was called by.
        root.copy_file(found)


def is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def linked_libraries(path: Path) -> list[str]:
    """The absolute paths of the shared libraries `path` loads, as ldd resolves them."""
    result = subprocess.run(["ldd", str(path)], capture_output=True, text=True)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        if "not a dynamic executable" in output:
            return []
        raise BuildError(f"ldd {path} failed: {output.strip()}")
    libraries = []
    for line in output.splitlines():
        line = line.strip()
        if "=> not found" in line:
            raise BuildError(f"{path} needs {line.split()[0]}, which is not on this host")
        if "=>" in line:
            line = line.split("=>", 1)[1].strip()
        candidate = line.split(" (")[0].strip()
        if candidate.startswith("/"):
            libraries.append(candidate)
    return libraries


def copy_libraries(root: Rootfs) -> int:
    """Copy every library an ELF file in the tree links (ldd lists the indirect
    ones too), at the path ldd resolved it to; returns how many were copied."""
    elf_files = [Path(d) / n for d, _, names in os.walk(root.path) for n in names
                 if not os.path.islink(os.path.join(d, n)) and is_elf(Path(d) / n)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        needed = {lib for libs in pool.map(linked_libraries, elf_files) for lib in libs}
    needed.update(find_dlopened_libraries())
    copied = 0
    for library in sorted(needed):
        if root.contains(library):
            continue  # a wheel's own bundled library, found through its RPATH
        root.copy_file(library)
        copied += 1
    return copied


def find_dlopened_libraries() -> list[str]:
    """Host paths of DLOPENED_LIBRARIES: each is loaded into this process and
    looked up in its memory map, so the path is the one the loader picks."""
    import ctypes

    paths = []
    for soname in DLOPENED_LIBRARIES:
        try:
            ctypes.CDLL(soname)
        except OSError as exc:
            raise BuildError(f"{soname} cannot be loaded on this host: {exc}") from None
        stem = soname.split(".so")[0] + ".so"
        with open("/proc/self/maps", encoding="utf-8") as f:
            mapped = {line.split()[-1] for line in f if "/" in line}
        # The map names the file itself (libgcc_s.so.1, or libfoo.so.1.2.3 behind
        # a libfoo.so.1 link): the loader looks for the soname beside it.
        found = [os.path.join(os.path.dirname(p), soname) for p in mapped if os.path.basename(p).startswith(stem)]
        if not found or not os.path.exists(found[0]):
            raise BuildError(f"{soname} is loaded but not found beside any file in /proc/self/maps")
        paths.append(found[0])
    return paths


def check_from_inside(root: Rootfs) -> None:
    """Run the plugin's Python and every command chrooted into the tree: a
    library or module the tree lacks fails here, with its name, not at enable."""
    if os.geteuid() != 0:
        log("not root: skipping the check from inside the tree (chroot needs root)")
        return
    imports = "; ".join(f"import {m}" for m in SMOKE_IMPORTS)
    checks = [[f"{VENV}/bin/python", "-c", imports]]
    for command in COMMANDS:
        checks.append([shutil.which(command, path=COMMAND_PATH), *START_CHECKS.get(command, ["--version"])])
    env = {"PATH": COMMAND_PATH, "HOME": "/root", "LC_ALL": "C"}
    for argv in checks:
        result = subprocess.run(["chroot", str(root.path), *argv], capture_output=True, text=True, env=env)
        command = os.path.basename(argv[0])
        if result.returncode != 0 and result.returncode not in START_CHECK_OK.get(command, ()):
            raise BuildError(f"inside the plugin tree, {' '.join(argv)} exited {result.returncode}: "
                             f"{(result.stderr or result.stdout).strip()[-2000:]}")


def tree_size(path: Path) -> int:
    return sum(os.lstat(os.path.join(d, n)).st_size for d, _, names in os.walk(path) for n in names)


def build_plugin_dir(workdir: Path) -> None:
    """workdir/config.json and workdir/rootfs, checked."""
    config = json.loads(CONFIG_JSON.read_text())  # a syntax error stops here, not in dockerd
    rootfs = workdir / "rootfs"
    rootfs.mkdir()
    root = Rootfs(rootfs)
    make_skeleton(root)
    interpreter = copy_python(root)
    site = make_venv(root, interpreter)
    distributions = required_distributions(ROOT_DISTRIBUTION)
    files = sum(copy_distribution(d, site) for d in distributions)
    names = copy_root_packages(ROOT_DISTRIBUTION, site)
    compile_packages(site, names, "/" + str(site.relative_to(rootfs)))
    copy_commands(root)
    libraries = copy_libraries(root)
    check_from_inside(root)
    shutil.copy2(CONFIG_JSON, workdir / "config.json")
    log(f"rootfs: Python {interpreter}, {', '.join(names)} + {len(distributions)} distributions "
        f"({files} files), {len(COMMANDS)} commands, {libraries} libraries; "
        f"{tree_size(rootfs) / 1e6:.0f} MB; entrypoint {' '.join(config.get('entrypoint', []))}")


def create_plugin(docker, name, workdir: Path) -> None:
    result = subprocess.run([docker, "plugin", "create", name, str(workdir)], capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"{docker} plugin create {name} {workdir} exited {result.returncode}: "
                         f"{(result.stderr or result.stdout).strip()}")


def import_csi_image(docker, name, rootfs: Path) -> None:
    """dockerd imports the tree as image `name`, whose entrypoint is fuxi-csi
    (contrib/kubernetes's image, made without a base image or a registry)."""
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    result = subprocess.run([docker, "import", "--change", f"ENTRYPOINT {json.dumps(CSI_ENTRYPOINT)}",
                             "--change", f"ENV PATH={COMMAND_PATH}", "-", name],
                            stdin=tar.stdout, capture_output=True, text=True)
    tar.stdout.close()
    if tar.wait() != 0 or result.returncode != 0:
        raise BuildError(f"{docker} import of {rootfs} as {name} exited {result.returncode}: "
                         f"{(result.stderr or result.stdout).strip()}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build fuxi's Docker managed plugin and create it in dockerd.")
    parser.add_argument("--name", default="fuxi:latest", help="plugin name (default: fuxi:latest)")
    parser.add_argument("--workdir", type=Path,
                        help="build here (a new directory) and keep it; default: a temporary directory, removed")
    parser.add_argument("--no-create", action="store_true", help="only build the plugin directory")
    parser.add_argument("--csi-image", metavar="IMAGE",
                        help="instead of creating the plugin, import the tree into dockerd as IMAGE running "
                             "fuxi-csi (the Kubernetes CSI driver)")
    parser.add_argument("--docker", default=os.environ.get("FUXI_DOCKER", "docker"),
                        help="docker client (default: $FUXI_DOCKER or docker)")
    args = parser.parse_args(argv)
    if args.no_create and args.workdir is None:
        parser.error("--no-create needs --workdir (the result would be removed)")
    if args.workdir is not None and args.workdir.exists():
        parser.error(f"--workdir {args.workdir} exists; give a new path")

    if args.workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="fuxi-plugin-"))
    else:
        workdir = args.workdir
        workdir.mkdir(parents=True)
    started = time.monotonic()
    try:
        build_plugin_dir(workdir)
        built = time.monotonic()
        log(f"built {workdir} in {built - started:.1f} s")
        if args.csi_image:
            import_csi_image(args.docker, args.csi_image, workdir / "rootfs")
            log(f"docker import {args.csi_image}: {time.monotonic() - built:.1f} s")
        elif not args.no_create:
            create_plugin(args.docker, args.name, workdir)
            log(f"docker plugin create {args.name}: {time.monotonic() - built:.1f} s")
    except BuildError as exc:
        log(f"ERROR: {exc}")
        return 1
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
