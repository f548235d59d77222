"""`fuxi`: talk to the running fuxi-server over its socket.

    fuxi pool status [--json]
    fuxi pool fill [--pool NAME] [--count N]
    fuxi pool drain [--pool NAME]
"""

import argparse
import json
import sys
import urllib.parse

import requests_unixsocket

DEFAULT_SOCKET = "/run/docker/plugins/fuxi.sock"
# A fill makes, formats, attaches and mounts a volume: well under Docker's 120 s.
CALL_TIMEOUT = 300


class CLIError(Exception):
    pass


class Plugin:
    def __init__(self, socket):
        self.base = "http+unix://" + urllib.parse.quote(socket, safe="")
        self.socket = socket
        self.session = requests_unixsocket.Session()

    def call(self, path, body=None):
        try:
            resp = self.session.post(f"{self.base}{path}", data=json.dumps(body or {}), timeout=CALL_TIMEOUT)
        except OSError as exc:  # requests' connection errors are OSErrors
            raise CLIError(f"cannot reach fuxi-server on {self.socket}: {exc}; is it running?") from None
        try:
            answer = resp.json()
        except ValueError:
            raise CLIError(f"{path}: fuxi-server answered HTTP {resp.status_code} without JSON") from None
        if answer.get("Err"):
            raise CLIError(answer["Err"])
        return answer


def _table(rows, columns):
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths)) for r in rows]
    return "\n".join(lines)


def pool_status(plugin, args):
    pools = plugin.call("/fuxi/pool/status")["Pools"]
    if args.json:
        print(json.dumps(pools, indent=2))
    elif not pools:
        print("no pools")
    else:
        print(_table(pools, ["pool", "tier", "size_gb", "fstype", "ready", "filling", "min_ready", "max"]))


def pool_fill(plugin, args):
    # One round of up to `batch` volumes (made side by side) per call, so a long
    # fill shows its progress and still goes as fast as the pool allows.
    pools = plugin.call("/fuxi/pool/status")["Pools"]
    made = 0
    for pool in pools:
        if args.pool and pool["pool"] != args.pool:
            continue
        room = pool["max"] - pool["ready"] - pool["filling"]
        wanted = min(room, args.count) if args.count else room
        done = 0
        while done < wanted:
            ids = plugin.call("/fuxi/pool/fill", {"Pool": pool["pool"],
                                                  "Count": min(pool["batch"], wanted - done)})["Made"]
            if not ids:
                break  # full: another fill got there first
            done += len(ids)
            if not args.json:
                print(f"{pool['pool']}: {done}/{wanted} {' '.join(ids)}", flush=True)
        made += done
    if args.pool and not any(p["pool"] == args.pool for p in pools):
        raise CLIError(f"no pool named {args.pool!r}; pools: {', '.join(p['pool'] for p in pools) or 'none'}")
    print(json.dumps({"made": made}) if args.json else f"made {made} volume(s)")


def pool_drain(plugin, args):
    deleted = plugin.call("/fuxi/pool/drain", {"Pool": args.pool} if args.pool else {})["Deleted"]
    print(json.dumps({"deleted": deleted}) if args.json else f"deleted {len(deleted)} volume(s)")


def parser():
    p = argparse.ArgumentParser(prog="fuxi", description="talk to the running fuxi-server")
    p.add_argument("--socket", default=DEFAULT_SOCKET, help=f"fuxi-server's socket (default {DEFAULT_SOCKET})")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="command", required=True)
    pool = sub.add_parser("pool", help="the warm pools").add_subparsers(dest="action", required=True)
    pool.add_parser("status", help="ready and filling volumes of each pool").set_defaults(run=pool_status)
    fill = pool.add_parser("fill", help="fill pools up to their max now")
    fill.add_argument("--pool", help="only this pool")
    fill.add_argument("--count", type=int, help="at most this many volumes per pool")
    fill.set_defaults(run=pool_fill)
    drain = pool.add_parser("drain", help="delete this host's idle pool volumes; the background "
                                          "refill rests until the next fill or restart")
    drain.add_argument("--pool", help="only this pool")
    drain.set_defaults(run=pool_drain)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(Plugin(args.socket), args)
    except CLIError as exc:
        print(f"fuxi: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
