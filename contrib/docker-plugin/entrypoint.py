"""Entrypoint of fuxi's Docker managed plugin: fuxi-server on the paths config.json fixes.

dockerd listens for the plugin on the socket named by config.json's
`interface.socket`, in the directory it mounts at /run/docker/plugins, and it
finds a volume's files on the host only when the mountpoint fuxi answers lies
under `propagatedMount`.  So the socket and the state directory (volumes are
mounted under STATE_DIR/mounts) are set here, over anything in fuxi.conf, and a
mount_root elsewhere is refused before it can hide volumes from containers.

The plugin's settings reach fuxi-server as:
  FUXI_CONFIG_FILE  the fuxi.conf to read (default /etc/fuxi/fuxi.conf, the
                    host's /etc/fuxi being mounted there); none is fine when it
                    is absent
  args              more fuxi-server flags, e.g. --devcloud
"""

import os
import sys

SOCKET = "/run/docker/plugins/fuxi.sock"  # config.json: interface.socket
STATE_DIR = "/var/lib/fuxi"  # config.json: propagatedMount
DEFAULT_CONFIG_FILE = "/etc/fuxi/fuxi.conf"


class EntrypointError(Exception):
    pass


def server_argv(extra_args, environ) -> list[str]:
    """fuxi-server's command line: the fixed paths, the config file if there is one, then extra_args."""
    argv = ["--socket", SOCKET, "--state-dir", STATE_DIR]
    config_file = environ.get("FUXI_CONFIG_FILE", DEFAULT_CONFIG_FILE)
    if config_file and os.path.exists(config_file):
        argv += ["--config-file", config_file]
    elif config_file:
        print(f"fuxi plugin: {config_file} does not exist; fuxi-server runs on its defaults "
              "and the plugin's args", file=sys.stderr)
    return argv + list(extra_args)


def check_mount_root(mount_root) -> None:
    """An empty mount_root means STATE_DIR/mounts; any other must lie under STATE_DIR."""
    if not mount_root:
        return
    normalized = os.path.normpath(mount_root)
    if normalized != STATE_DIR and not normalized.startswith(STATE_DIR + "/"):
        raise EntrypointError(
            f"mount_root = {mount_root} lies outside {STATE_DIR}, the plugin's propagatedMount: "
            "dockerd would not find the volumes there; remove mount_root from fuxi.conf "
            f"(the default, {STATE_DIR}/mounts, is right for the plugin)"
        )


def main(args=None) -> int:
    from fuxi import server, settings

    argv = server_argv(sys.argv[1:] if args is None else args, os.environ)
    try:
        check_mount_root(settings.load(argv).mount_root)
    except (settings.SettingsError, EntrypointError) as exc:
        print(f"fuxi plugin: {exc}", file=sys.stderr)
        return 2
    return server.main(argv)


if __name__ == "__main__":
    sys.exit(main())
