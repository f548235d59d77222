"""What the `fuxi` CLI prints: tables and key/value blocks for people, plain
records for --json. Pure functions of the server's answers, so they are tested
without a server."""

from collections import Counter

from storage_core.diagnostics import FAIL, INFO, OK, STATUSES, WARN

VOLUME_COLUMNS = ("name", "backend", "size", "attached", "mounts", "pool")


def table(rows, columns, headers=None) -> str:
    """Rows (dicts) as aligned columns under upper-case headers; None shows as '-'."""
    headers = headers or [c.upper() for c in columns]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def key_values(pairs) -> str:
    """(key, value) pairs as an aligned block; None shows as '-'."""
    pairs = list(pairs)
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{k.ljust(width)}  {_cell(v)}".rstrip() for k, v in pairs)


def _cell(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


# -- volumes -------------------------------------------------------------------

def attach_state(status) -> str:
    """Where the volume is attached, in a word: here, on another host, nowhere,
    or the cloud's own status while it is between states."""
    if status.get("attached"):
        return "here"
    cloud_status = status.get("cloud_status")
    if status.get("backend") == "manila":
        # A share is granted, not attached; other hosts' rules are not in the catalog.
        return "not here" if cloud_status == "available" else cloud_status or "?"
    if cloud_status == "in-use":
        return "other host"
    if cloud_status == "available":
        return "no"
    return cloud_status or "?"


def volume_record(volume) -> dict:
    """One volume as `fuxi volumes --json` gives it (from Docker's Get shape)."""
    status = volume.get("Status") or {}
    return {
        "name": volume["Name"],
        "backend": status.get("backend"),
        "id": status.get("volume_id") or status.get("share_id"),
        "size_gb": status.get("size_gb"),
        "attached": attach_state(status),
        "mounts": status.get("mounts", 0),
        "pool": status.get("pool"),
        "cloud_status": status.get("cloud_status"),
        "mountpoint": volume.get("Mountpoint") or None,
        "created_at": volume.get("CreatedAt") or None,
    }


def _size(size_gb) -> str | None:
    return None if size_gb is None else f"{size_gb} GiB"


def volumes_table(records) -> str:
    if not records:
        return "no volumes"
    rows = [{**r, "size": _size(r["size_gb"])} for r in sorted(records, key=lambda r: r["name"])]
    return table(rows, VOLUME_COLUMNS)


def inspect_text(volume) -> str:
    """`fuxi inspect NAME` for people: the volume, the cloud's view, this host's."""
    status = volume.get("Status") or {}
    host = volume.get("Host") or {}
    callers = volume.get("MountCallers") or {}
    metadata = volume.get("Metadata") or {}
    pairs = [
        ("name", volume["Name"]),
        ("backend", status.get("backend")),
        ("id", volume.get("VolumeId")),
        ("size", _size(status.get("size_gb"))),
    ]
    if status.get("backend") == "manila":
        pairs += [("protocol", status.get("proto")), ("share type", status.get("share_type")),
                  ("adopted", status.get("adopted"))]
    else:
        pairs += [("fstype", status.get("fstype")), ("volume type", status.get("volume_type"))]
    pairs += [
        ("zone", status.get("availability_zone")),
        ("cloud status", status.get("cloud_status")),
        ("created", volume.get("CreatedAt")),
        ("pool", status.get("pool") or "none (created cold)"),
        ("attached", attach_state(status)),
    ]
    if status.get("attach_mode"):
        pairs.append(("attach mode", status["attach_mode"]))
    holders = [a.get("host") or a.get("server_id") or f"attachment {a.get('attachment_id')}"
               for a in volume.get("CloudAttachments") or []]
    if holders:
        pairs.append(("held by", ", ".join(sorted(set(holders)))))
    if host:
        pairs += [("host phase", host.get("phase")), ("device", host.get("device_path")),
                  ("attachment", host.get("attachment_id"))]
    pairs += [
        ("mountpoint", volume.get("Mountpoint")),
        ("mounts", f"{sum(callers.values())}" + (f" ({_callers(callers)})" if callers else "")),
        ("metadata", ", ".join(f"{k}={v}" for k, v in sorted(metadata.items()))),
    ]
    return key_values(pairs)


def _callers(callers) -> str:
    # Docker's mount ids are 64 hex digits: the first 12 tell them apart, as `docker ps` does.
    return ", ".join(f"{c[:12]}" + (f" x{n}" if n > 1 else "") for c, n in sorted(callers.items()))


# -- doctor ----------------------------------------------------------------------

def check_record(check) -> dict:
    return {"area": check.area, "check": check.what, "status": check.status, "found": check.found,
            "fix": check.fix or None}


def check_lines(check) -> str:
    """One check for people: the status, the area, what was checked and found;
    then, for anything not OK, the fix on its own line."""
    line = f"{check.status:<4}  {check.area:<7} {check.what}: {check.found}"
    if check.fix:
        label = "fix" if check.status in (WARN, FAIL) else "note"
        line += f"\n{'':<14}{label}: {check.fix}"
    return line


def doctor_counts(checks) -> dict:
    counted = Counter(c.status for c in checks)
    return {status: counted.get(status, 0) for status in STATUSES}


def doctor_summary(checks) -> str:
    counts = doctor_counts(checks)
    verdict = ("problems found: fix the FAIL lines" if counts[FAIL] else
               "no failures; see the WARN lines" if counts[WARN] else "all checks passed")
    return f"{counts[OK]} OK, {counts[INFO]} INFO, {counts[WARN]} WARN, {counts[FAIL]} FAIL: {verdict}"


def doctor_record(checks) -> dict:
    return {"checks": [check_record(c) for c in checks], "counts": doctor_counts(checks),
            "ok": not any(c.status == FAIL for c in checks)}

