"""`fuxi`: talk to the running fuxi-server over its socket, and check the set-up.

    fuxi volumes                      every volume: backend, size, attach state, mounts, pool
    fuxi inspect NAME                 one volume in detail (read afresh from the cloud)
    fuxi release NAME                 forget a volume without deleting it (an adopted one gets its old name back)
    fuxi pool status|fill|drain       the warm pools (when fuxi.conf has any)
    fuxi extend NAME SIZE             grow a volume to SIZE GiB (mounted here: its file system too, online)
    fuxi snapshot create|list|delete  Cinder snapshots of a volume (mounted here: frozen, consistent)
    fuxi backup create|list|restore|delete
                                      Cinder backups of a volume; restore into a new or an existing one
    fuxi doctor                       config, cloud, host, socket and dockerd, each OK or a fix

Tables for people by default; --json for scripts (before or after the command).
--socket PATH picks the server; --config-file FILE reads the socket (and, for
doctor, everything else) from fuxi-server's config file.
"""

import argparse
import json
import logging
import os
import sys
import warnings

from fuxi import cli_output
from fuxi.plugin_client import DEFAULT_SOCKET, CLIError, Plugin


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


# -- volumes ------------------------------------------------------------------------

def volumes(plugin, args) -> int:
    records = [cli_output.volume_record(v) for v in plugin.call("/fuxi/volumes")["Volumes"]]
    if args.json:
        _print_json(sorted(records, key=lambda r: r["name"]))
    else:
        print(cli_output.volumes_table(records))
    return 0


def inspect(plugin, args) -> int:
    volume = plugin.call("/fuxi/volumes/inspect", {"Name": args.name})["Volume"]
    if args.json:
        _print_json(volume)
    else:
        print(cli_output.inspect_text(volume))
    return 0


def release(plugin, args) -> int:
    released = plugin.call("/fuxi/volumes/release", {"Name": args.name})["Released"]
    if args.json:
        _print_json(released)
    else:
        noun = "share" if released["Backend"] == "manila" else "volume"
        print(f"released {released['Name']}: fuxi no longer manages {released['Backend'].capitalize()} {noun} "
              f"{released['VolumeId']}; not deleted, it is named {released['CloudName'] or '(no name)'!r} "
              "in the cloud now")
    return 0


# -- pools --------------------------------------------------------------------------

POOL_COLUMNS = ("pool", "tier", "size_gb", "fstype", "ready", "filling", "min_ready", "max")


def _pools(plugin, only=None) -> list[dict]:
    pools = plugin.call("/fuxi/pool/status")["Pools"]
    if only is not None and not any(p["pool"] == only for p in pools):
        raise CLIError(f"no pool named {only!r}; pools: {', '.join(p['pool'] for p in pools) or 'none'}")
    return [p for p in pools if only is None or p["pool"] == only]


def _progress(args, text) -> None:
    # With --json, stdout is the one JSON document; progress goes to stderr.
    print(text, file=sys.stderr if args.json else sys.stdout, flush=True)


def pool_status(plugin, args) -> int:
    pools = _pools(plugin)
    if args.json:
        _print_json(pools)
    elif not pools:
        print("no pools")
    else:
        print(cli_output.table(pools, POOL_COLUMNS))
    return 0


def pool_fill(plugin, args) -> int:
    # One round of up to `batch` volumes (made side by side) per call, so a long
    # fill shows its progress and still goes as fast as the pool allows.
    made = 0
    for pool in _pools(plugin, args.pool):
        room = pool["max"] - pool["ready"] - pool["filling"]
        wanted = min(room, args.count) if args.count else room
        if wanted <= 0:
            _progress(args, f"{pool['pool']}: full ({pool['ready']} ready, {pool['filling']} filling, "
                            f"max {pool['max']})")
            continue
        done = 0
        while done < wanted:
            batch = min(pool["batch"], wanted - done)
            _progress(args, f"{pool['pool']}: making {batch} volume(s) ({done}/{wanted} done)")
            ids = plugin.call("/fuxi/pool/fill", {"Pool": pool["pool"], "Count": batch})["Made"]
            if not ids:
                break  # full: another fill got there first
            done += len(ids)
            _progress(args, f"{pool['pool']}: {done}/{wanted} ready: {' '.join(ids)}")
        made += done
    if args.json:
        _print_json({"made": made})
    else:
        print(f"made {made} volume(s)")
    return 0


def pool_drain(plugin, args) -> int:
    # Pool by pool, so a drain of many volumes shows how far it got.
    deleted = []
    for pool in _pools(plugin, args.pool):
        _progress(args, f"{pool['pool']}: draining")
        gone = plugin.call("/fuxi/pool/drain", {"Pool": pool["pool"]})["Deleted"]
        deleted += gone
        _progress(args, f"{pool['pool']}: deleted {len(gone)} volume(s)")
    if args.json:
        _print_json({"deleted": deleted})
    else:
        print(f"deleted {len(deleted)} volume(s)")
    return 0


# -- extend -------------------------------------------------------------------------

def extend(plugin, args) -> int:
    _progress(args, f"{args.name}: extending to {args.size} GiB")
    done = plugin.call("/fuxi/volumes/extend", {"Name": args.name, "Size": args.size})["Extended"]
    if args.json:
        _print_json(done)
    elif done["Backend"] == "manila":
        print(f"{done['Name']}: share grown from {done['OldSizeGb']} to {done['NewSizeGb']} GiB; "
              "its mounts see the new size")
    elif done["MountedHere"]:
        print(f"{done['Name']}: grown from {done['OldSizeGb']} to {done['NewSizeGb']} GiB; the mounted "
              "file system was grown online")
    else:
        print(f"{done['Name']}: grown from {done['OldSizeGb']} to {done['NewSizeGb']} GiB in the cloud; "
              "not mounted here, so its file system grows at its next mount")
    return 0


# -- snapshots and backups -----------------------------------------------------------

COPY_COLUMNS = ("name", "volume", "size", "status", "frozen", "created", "id")
# A backup copies the whole volume to the backup service: wait as long as the server may.
BACKUP_CALL_TIMEOUT = 86400 + 300


def _copies_table(copies, noun) -> str:
    if not copies:
        return f"no {noun}s"
    rows = [{"name": c["Name"], "volume": c["Volume"], "size": f"{c['SizeGb']} GiB", "status": c["Status"],
             "frozen": c["Frozen"], "created": c["CreatedAt"], "id": c["Id"]} for c in copies]
    return cli_output.table(rows, COPY_COLUMNS)


def _made(args, copy, noun) -> None:
    if args.json:
        _print_json(copy)
        return
    how = ("its file system was frozen around the copy (consistent)" if copy["Frozen"]
           else "not mounted here, so not frozen")
    print(f"{noun} {copy['Name']} ({copy['Id']}) of {copy['Volume']}: {copy['SizeGb']} GiB, {copy['Status']}; "
          f"{how}")


# noun -> (the list call, its answer's key, the key naming one in a delete)
_COPY_CALLS = {"snapshot": ("/fuxi/snapshots", "Snapshots", "Snapshot"),
               "backup": ("/fuxi/backups", "Backups", "Backup")}


def copy_list(plugin, args) -> int:
    path, many, _one = _COPY_CALLS[args.noun]
    found = plugin.call(path, {"Name": args.name})[many]
    print(json.dumps(found, indent=2, sort_keys=True) if args.json else _copies_table(found, args.noun))
    return 0


def copy_delete(plugin, args) -> int:
    path, _many, one = _COPY_CALLS[args.noun]
    gone = plugin.call(f"{path}/delete", {one: args.copy}, timeout=BACKUP_CALL_TIMEOUT)["Deleted"]
    if args.json:
        _print_json(gone)
    else:
        print(f"deleted {args.noun} {gone['Name']} ({gone['Id']}) of {gone['Volume']}")
    return 0


def copy_create(plugin, args) -> int:
    path, _many, one = _COPY_CALLS[args.noun]
    _progress(args, f"{args.name}: taking a snapshot" + (", then backing it up" if args.noun == "backup" else ""))
    body = {"Name": args.name, f"{one}Name": args.copy_name, "CrashConsistent": args.crash_consistent}
    if args.noun == "backup":
        body["Incremental"] = args.incremental
    made = plugin.call(f"{path}/create", body, timeout=BACKUP_CALL_TIMEOUT)[one]
    _made(args, made, args.noun)
    return 0


def backup_restore(plugin, args) -> int:
    _progress(args, f"restoring backup {args.backup} into {args.name}")
    done = plugin.call("/fuxi/backups/restore", {"Backup": args.backup, "Name": args.name,
                                                 "Overwrite": args.overwrite},
                       timeout=BACKUP_CALL_TIMEOUT)["Restored"]
    if args.json:
        _print_json(done)
    else:
        print(f"{done['Name']} ({done['VolumeId']}): " + ("made from backup " if done["Created"]
                                                          else "overwritten with backup ") + done["BackupId"])
    return 0


# -- doctor -------------------------------------------------------------------------

def doctor(args) -> int:
    # os-brick and eventlet speak up on stderr when loaded and while reading the
    # connector (e.g. "Could not find the iSCSI Initiator File"); the checks
    # report those facts in their own lines, so only the libraries' errors show.
    logging.basicConfig(level=logging.ERROR, format="fuxi doctor: %(name)s: %(message)s")
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    from fuxi.doctor import Doctor, DoctorOptions

    options = DoctorOptions(config_file=args.config_file, socket=args.socket, state_dir=args.state_dir,
                            devcloud=args.devcloud, docker=not args.no_docker, docker_socket=args.docker_socket)
    checks = []
    for check in Doctor(options).run():
        checks.append(check)
        if not args.json:
            print(cli_output.check_lines(check), flush=True)
    if args.json:
        _print_json(cli_output.doctor_record(checks))
    else:
        print(cli_output.doctor_summary(checks))
    return 0 if cli_output.doctor_record(checks)["ok"] else 1


# -- the command line ---------------------------------------------------------------

def _common_options(parser, top) -> None:
    """--socket, --config-file and --json, accepted before and after the command.
    On a command's parser they default to SUPPRESS, so they never undo the same
    option given before the command."""
    def default(value):
        return value if top else argparse.SUPPRESS

    parser.add_argument("--socket", metavar="PATH", default=default(None),
                        help=f"fuxi-server's socket (default: the config file's, else {DEFAULT_SOCKET})")
    parser.add_argument("--config-file", metavar="FILE", default=default(None),
                        help="fuxi-server's config file (its [fuxi] section; doctor checks all of it)")
    parser.add_argument("--json", action="store_true", default=default(False), help="machine-readable output")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fuxi", description="talk to the running fuxi-server; check the set-up")
    _common_options(p, top=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, run, help_text, parent=sub):
        cmd = parent.add_parser(name, help=help_text, description=help_text)
        _common_options(cmd, top=False)
        cmd.set_defaults(run=run)
        return cmd

    command("volumes", volumes, "every volume: name, backend, size, attach state, mounts, pool origin")
    command("inspect", inspect, "one volume in detail, read afresh from the cloud").add_argument(
        "name", metavar="NAME", help="the volume's Docker name")
    command("release", release, "forget a volume without deleting it: fuxi's tags go, an adopted one gets "
                                "its old name back; refused while mounted").add_argument(
        "name", metavar="NAME", help="the volume's Docker name")

    pool = sub.add_parser("pool", help="the warm pools").add_subparsers(dest="action", required=True,
                                                                       metavar="ACTION")
    command("status", pool_status, "ready and filling volumes of each pool", pool)
    fill = command("fill", pool_fill, "fill pools up to their max now, printing each round", pool)
    fill.add_argument("--pool", help="only this pool")
    fill.add_argument("--count", type=_positive, help="at most this many volumes per pool")
    drain = command("drain", pool_drain, "delete this host's idle pool volumes; the background refill "
                                         "rests until the next fill or restart", pool)
    drain.add_argument("--pool", help="only this pool")

    grow = command("extend", extend, "grow a volume to SIZE GiB: in the cloud, then (when it is mounted "
                                     "here) its device and file system, while containers use it")
    grow.add_argument("name", metavar="NAME", help="the volume's Docker name")
    grow.add_argument("size", metavar="SIZE", type=_positive, help="the new size in GiB (larger than now)")

    _copy_commands(sub, command)

    check = command("doctor", doctor, "check config, cloud, host, socket and dockerd; each line OK or a fix; "
                                      "exit status 1 when anything FAILs")
    check.add_argument("--devcloud", action="store_true",
                       help="check the embedded devcloud a `fuxi-server --devcloud` runs (as that flag does)")
    check.add_argument("--state-dir", metavar="PATH", help="fuxi-server's --state-dir, if it was given one")
    check.add_argument("--no-docker", action="store_true", help="skip the dockerd checks (no Docker on this host)")
    check.add_argument("--docker-socket", metavar="PATH",
                       help="dockerd's API socket (default: $DOCKER_HOST, else /var/run/docker.sock)")
    return p


def _copy_commands(sub, command) -> None:
    snapshot = sub.add_parser("snapshot", help="Cinder snapshots of fuxi's volumes").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    _copy_create(command, snapshot, "snapshot", "snapshot a volume; mounted here, its file system is frozen "
                                                "(writes wait) until Cinder has made it")
    _list_and_delete(command, snapshot, "snapshot")

    backup = sub.add_parser("backup", help="Cinder backups of fuxi's volumes").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    make = _copy_create(command, backup, "backup", "back a volume up, from a snapshot taken for it (frozen "
                                                   "when mounted here); the volume stays in use meanwhile")
    make.add_argument("--incremental", action="store_true", help="only what changed since the last backup")
    restore = command("restore", backup_restore, "restore a backup into a new volume NAME, or (with "
                                                 "--overwrite) over an existing one no host uses", backup)
    restore.add_argument("backup", metavar="BACKUP", help="the backup's name or id")
    restore.add_argument("name", metavar="NAME", help="the volume's Docker name")
    restore.add_argument("--overwrite", action="store_true",
                         help="replace all data of the existing volume NAME with the backup's")
    _list_and_delete(command, backup, "backup")


def _copy_create(command, parent, noun, help_text):
    make = command("create", copy_create, help_text, parent)
    make.add_argument("name", metavar="NAME", help="the volume's Docker name")
    make.add_argument("--name", dest="copy_name", metavar=noun.upper(),
                      help=f"the {noun}'s name (default: NAME-<UTC time>)")
    make.add_argument("--crash-consistent", action="store_true",
                      help="accept a crash-consistent copy of a volume another host uses (fuxi can freeze only "
                           "the file systems mounted on this host)")
    make.set_defaults(noun=noun)
    return make


def _list_and_delete(command, parent, noun) -> None:
    listing = command("list", copy_list, f"fuxi's {noun}s, oldest first", parent)
    listing.add_argument("name", metavar="NAME", nargs="?", help="only this volume's")
    deleting = command("delete", copy_delete, f"delete one of fuxi's {noun}s", parent)
    deleting.add_argument("copy", metavar=noun.upper(), help="its name or id")
    for cmd in (listing, deleting):
        cmd.set_defaults(noun=noun)


def _positive(text) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _socket(args) -> str:
    """--socket, else the config file's socket, else the default."""
    if args.socket:
        return args.socket
    if args.config_file:
        from fuxi import settings

        try:
            return settings.load(["--config-file", args.config_file]).socket
        except settings.SettingsError as exc:
            raise CLIError(str(exc)) from None
    return DEFAULT_SOCKET


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.run is doctor:
            return doctor(args)
        return args.run(Plugin(_socket(args)), args)
    except CLIError as exc:
        print(f"fuxi: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`fuxi doctor | head`): stop quietly, as Unix tools do;
        # stdout goes to /dev/null so the interpreter's last flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
