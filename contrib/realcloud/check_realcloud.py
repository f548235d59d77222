#!/usr/bin/env python3
"""End-to-end check of a running realcloud stack, and a record of what it does.

Needs openstacksdk and os-brick (fuxi's venv, or the system python3 here),
root, mkfs.ext4 and mount.  Not stdlib-only, unlike realcloud.py.

    check_realcloud.py --dir D               # volume/attach cycle per cloud,
                                             # tenancy, error bodies, filters,
                                             # snapshots, clones, backups
    check_realcloud.py --dir D --snapshots-only
    check_realcloud.py --dir D --expiry 30   # calls for 30 s (start the stack
                                             # with --token-expiration 10)

Writes what it observed to D/observed.json (or --out).
"""

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

CLOUDS = ('realcloud', 'realcloud-appcred', 'realcloud-trust')
OBS = {}
KSA_LOG = []


class _Collect(logging.Handler):
    def emit(self, record):
        KSA_LOG.append(record.getMessage())


def capture_keystoneauth():
    log = logging.getLogger('keystoneauth.session')
    log.setLevel(logging.DEBUG)
    log.addHandler(_Collect())
    log.propagate = False


def note(key, value):
    OBS[key] = value
    print('%s: %s' % (key, json.dumps(value, default=str)), flush=True)


def run(argv):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True).stdout


def loop_backing_file(dev):
    out = run(['losetup', '--noheadings', '--output', 'BACK-FILE', dev])
    return out.strip()


def loops_of(path):
    return [line.split(':', 1)[0]
            for line in run(['losetup', '-j', path]).splitlines() if line]


def raw(conn, method, path, microversion='3.0', **kw):
    """A request through the cloud's own session, errors not raised."""
    resp = conn.block_storage.request(
        path, method, microversion=microversion, raise_exc=False, **kw)
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    return {'status': resp.status_code, 'body': body,
            'openstack-api-version': resp.headers.get('OpenStack-API-Version')}


def wait_volume(conn, vol_id, status, timeout=60):
    end = time.monotonic() + timeout
    seen = []
    while True:
        vol = conn.block_storage.get_volume(vol_id)
        if not seen or seen[-1] != vol.status:
            seen.append(vol.status)
        if vol.status == status:
            return vol, seen
        if vol.status in ('error', 'error_deleting') or \
                time.monotonic() > end:
            raise RuntimeError('volume %s is %s, wanted %s (seen %s)'
                               % (vol_id, vol.status, status, seen))
        time.sleep(0.2)


def brick_setup(dir):
    import os_brick.privileged
    from oslo_concurrency import lockutils
    os_brick.privileged.default.set_client_mode(False)
    lock_path = os.path.join(dir, 'check-locks')
    os.makedirs(lock_path, exist_ok=True)
    lockutils.set_defaults(lock_path=lock_path)
    from os_brick.initiator import connector
    props = connector.get_connector_properties(None, '127.0.0.1', False,
                                               False)
    local = connector.InitiatorConnector.factory('LOCAL', None)
    return props, local


def attach_cycle(cloud, dir, props, local):
    import openstack
    conn = openstack.connect(cloud=cloud)
    volumes_dir = os.path.join(dir, 'volumes')
    name = 'rc-%s-%s' % (cloud, uuid.uuid4().hex[:6])
    meta = {'volume_from': 'fuxi', 'fstype': 'ext4'}
    t = time.monotonic()
    vol = conn.block_storage.create_volume(size=1, name=name, metadata=meta)
    note(cloud + ' create: status in POST response', vol.status)
    vol, seen = wait_volume(conn, vol.id, 'available')
    note(cloud + ' create -> available (s)', round(time.monotonic() - t, 2))
    note(cloud + ' statuses seen while creating', seen)
    assert vol.metadata == meta, vol.metadata
    found = list(conn.block_storage.volumes(name=name))
    assert [v.id for v in found] == [vol.id], found
    path = os.path.join(volumes_dir, 'volume-' + vol.id)
    assert os.path.exists(path), path

    t = time.monotonic()
    att = conn.block_storage.create_attachment(vol.id, connector=props,
                                               mode='rw')
    note(cloud + ' attachment create (s)', round(time.monotonic() - t, 2))
    ci = att.connection_info
    note(cloud + ' attachment after create', {
        'status': att.status, 'attach_mode': att.attach_mode,
        'connection_info': ci})
    v = conn.block_storage.get_volume(vol.id)
    a = conn.block_storage.get_attachment(att.id)
    note(cloud + ' after create-with-connector: volume / attachment status',
         [v.status, a.status])
    note(cloud + ' volume.attachments before complete', v.attachments)
    time.sleep(1)
    note(cloud + ' 1 s later: volume / attachment status', [
        conn.block_storage.get_volume(vol.id).status,
        conn.block_storage.get_attachment(att.id).status])
    note(cloud + ' raw GET attachment before complete (3.27)',
         raw(conn, 'GET', '/attachments/' + att.id, microversion='3.27'))
    assert ci['driver_volume_type'] == 'local', ci
    dev = ci['device_path']
    assert re.match(r'^/dev/loop\d+$', dev), dev
    back = loop_backing_file(dev)
    assert back == path, (back, path)

    # delete while attached (reserved/attaching, not yet completed)
    note(cloud + ' DELETE volume while attachment reserved',
         raw(conn, 'DELETE', '/volumes/' + vol.id))

    device = local.connect_volume(ci)
    assert device['path'] == dev, device
    t = time.monotonic()
    conn.block_storage.complete_attachment(att.id)
    note(cloud + ' attachment complete (s)', round(time.monotonic() - t, 2))
    v = conn.block_storage.get_volume(vol.id)
    a = conn.block_storage.get_attachment(att.id)
    note(cloud + ' after complete: volume / attachment status / attach_status',
         [v.status, a.status, v.attachments and
          v.attachments[0].get('attach_status')])
    note(cloud + ' volume.attachments after complete', v.attachments)
    note(cloud + ' DELETE volume while in-use',
         raw(conn, 'DELETE', '/volumes/' + vol.id))

    run(['mkfs.ext4', '-q', dev])
    mnt = tempfile.mkdtemp(prefix='rc-mnt-')
    run(['mount', dev, mnt])
    try:
        with open(os.path.join(mnt, 'hello'), 'w') as f:
            f.write('hello from %s\n' % cloud)
    finally:
        run(['umount', mnt])
        os.rmdir(mnt)
    local.disconnect_volume(ci, device)

    t = time.monotonic()
    conn.block_storage.delete_attachment(att.id, ignore_missing=False)
    note(cloud + ' attachment delete (s)', round(time.monotonic() - t, 2))
    v = conn.block_storage.get_volume(vol.id)
    note(cloud + ' after attachment delete: volume status', v.status)
    wait_volume(conn, vol.id, 'available', timeout=30)
    assert loops_of(path) == [], loops_of(path)
    note(cloud + ' GET deleted attachment',
         raw(conn, 'GET', '/attachments/' + att.id, microversion='3.27'))

    conn.block_storage.delete_volume(vol.id)
    conn.block_storage.wait_for_delete(vol, interval=0.2, wait=60)
    assert not os.path.exists(path)
    note(cloud + ' GET deleted volume', raw(conn, 'GET', '/volumes/' + vol.id))

    # microversions the SDK sent, from keystoneauth's request log
    for verb, what in (('POST', '/attachments '),
                       ('POST', '/attachments/%s/action ' % att.id),
                       ('DELETE', '/attachments/%s ' % att.id)):
        sent = [re.search(r'OpenStack-API-Version: (volume [\d.]+)', m)
                for m in KSA_LOG if m.startswith('REQ: curl') and
                (' -X %s ' % verb) in m and (what.strip() + ' ') in m + ' ']
        note('%s %s %s sent with' % (cloud, verb, what.strip()),
             sent[-1].group(1) if sent and sent[-1] else None)
    return conn


def multiattach(dir, props):
    """Two attachments share one loop device; the last delete releases it."""
    import openstack
    conn = openstack.connect(cloud='realcloud')
    vol = conn.block_storage.create_volume(size=1, name='rc-multi',
                                           volume_type='local-multiattach')
    vol, _ = wait_volume(conn, vol.id, 'available')
    note('multiattach volume: multiattach flag', vol.is_multiattach)
    path = os.path.join(dir, 'volumes', 'volume-' + vol.id)
    a1 = conn.block_storage.create_attachment(vol.id, connector=props)
    conn.block_storage.complete_attachment(a1.id)
    a2 = conn.block_storage.create_attachment(vol.id, connector=props)
    note('multiattach: devices of the two attachments',
         [a1.connection_info['device_path'],
          a2.connection_info['device_path']])
    assert a1.connection_info['device_path'] == \
        a2.connection_info['device_path']
    conn.block_storage.complete_attachment(a2.id)
    note('multiattach: volume status with two attachments',
         conn.block_storage.get_volume(vol.id).status)
    conn.block_storage.delete_attachment(a1.id, ignore_missing=False)
    kept = loops_of(path)
    note('multiattach: loop devices after first delete / volume status',
         [kept, conn.block_storage.get_volume(vol.id).status])
    assert len(kept) == 1, kept
    conn.block_storage.delete_attachment(a2.id, ignore_missing=False)
    wait_volume(conn, vol.id, 'available', timeout=30)
    assert loops_of(path) == [], loops_of(path)
    single = conn.block_storage.create_volume(size=1, name='rc-single')
    wait_volume(conn, single.id, 'available')
    s1 = conn.block_storage.create_attachment(single.id, connector=props)
    r = raw(conn, 'POST', '/attachments', microversion='3.44', json={
        'attachment': {'volume_uuid': single.id, 'connector': props}})
    note('second attachment of a non-multiattach volume (3.44)', r)
    conn.block_storage.delete_attachment(s1.id, ignore_missing=False)
    wait_volume(conn, single.id, 'available', timeout=30)
    for v in (vol, single):
        conn.block_storage.delete_volume(v.id)
        conn.block_storage.wait_for_delete(v, interval=0.2, wait=60)


def filters_and_errors(dir):
    import openstack
    conn = openstack.connect(cloud='realcloud')
    other = openstack.connect(cloud='realcloud-other')
    note('version discovery (block_storage endpoint, microversion range)', [
        conn.block_storage.get_endpoint(),
        str(conn.block_storage.get_api_major_version()),
        raw(conn, 'GET', '/volumes', microversion='3.27')[
            'openstack-api-version']])

    # tenancy
    ov = other.block_storage.create_volume(size=1, name='rc-other-vol')
    wait_volume(other, ov.id, 'available')
    note('realcloud lists other project volume by name',
         [v.id for v in conn.block_storage.volumes(name='rc-other-vol')])
    note('realcloud GET other project volume',
         raw(conn, 'GET', '/volumes/' + ov.id))
    note('realcloud DELETE other project volume',
         raw(conn, 'DELETE', '/volumes/' + ov.id))

    # filters
    a = conn.block_storage.create_volume(
        size=1, name='rc-filter-a', metadata={'k': 'v', 'volume_from': 'fuxi'})
    b = conn.block_storage.create_volume(
        size=1, name='rc-filter-b', metadata={'k': 'w'})
    for vol in (a, b):
        wait_volume(conn, vol.id, 'available')
    names = lambda r: sorted(v['name'] for v in r['body'].get('volumes', []))  # noqa
    for label, query, mv in (
            ('metadata={"k":"v"} (JSON)', 'metadata={"k":"v"}', '3.0'),
            ('metadata={"k":"v"} (JSON) at 3.60', 'metadata={"k":"v"}',
             '3.60'),
            ("metadata={'k':'v'} (python repr)", "metadata={'k':'v'}", '3.0'),
            ('metadata={"k":"nomatch"}', 'metadata={"k":"nomatch"}', '3.0'),
            ('metadata=k:v', 'metadata=k:v', '3.0'),
            ('metadata[k]=v', 'metadata[k]=v', '3.0'),
            ('name=rc-filter-a', 'name=rc-filter-a', '3.0'),
            ('name=rc-filter (prefix)', 'name=rc-filter', '3.0'),
            ('name~=rc-filter at 3.34', 'name~=rc-filter', '3.34'),
            ('name~=rc-filter at 3.0', 'name~=rc-filter', '3.0'),
            ('bogus=1 at 3.0', 'bogus=1', '3.0'),
            ('bogus=1 at 3.34', 'bogus=1', '3.34')):
        r = raw(conn, 'GET', '/volumes/detail?' + query, microversion=mv)
        note('filter ' + label, [r['status'], names(r)
                                 if r['status'] == 200 else r['body']])
    got = sorted(v.name for v in conn.block_storage.volumes(
        properties={'k': 'v'}))
    note('sdk volumes(properties={"k": "v"}) names', got)
    got = sorted(v.name for v in conn.block_storage.volumes(
        metadata={'k': 'v'}))
    note('sdk volumes(metadata={"k": "v"}) names', got)

    # error bodies
    missing = str(uuid.uuid4())
    note('404 GET volume', raw(conn, 'GET', '/volumes/' + missing))
    note('404 DELETE volume', raw(conn, 'DELETE', '/volumes/' + missing))
    note('404 GET attachment', raw(conn, 'GET', '/attachments/' + missing,
                                   microversion='3.27'))
    note('404 DELETE attachment', raw(conn, 'DELETE',
                                      '/attachments/' + missing,
                                      microversion='3.27'))
    note('400 create size 0', raw(conn, 'POST', '/volumes',
                                  json={'volume': {'size': 0}}))
    note('POST /attachments at 3.0', raw(conn, 'POST', '/attachments', json={
        'attachment': {'volume_uuid': a.id}}))
    note('POST /attachments with instance_uuid null at 3.27',
         raw(conn, 'POST', '/attachments', microversion='3.27', json={
             'attachment': {'volume_uuid': a.id, 'instance_uuid': None}}))
    note('create size 100000', raw(conn, 'POST', '/volumes', json={
        'volume': {'size': 100000}}))
    root = conn.block_storage.get_endpoint().split('/v3/')[0] + '/'
    resp = conn.session.get(root, raise_exc=False,
                            headers={'X-Auth-Token': None})
    note('GET / (no token): status, versions', [resp.status_code, [
        (v['id'], v['status'], v.get('min_version'), v.get('version'))
        for v in resp.json().get('versions', [])]])
    sent = [m.split(' -H ')[0] for m in KSA_LOG
            if m.startswith('REQ: curl') and '/volumes/detail?' in m]
    note('sdk list query strings sent (last 4)', sent[-4:])
    for vol, c in ((a, conn), (b, conn), (ov, other)):
        c.block_storage.delete_volume(vol.id)
    for vol, c in ((a, conn), (b, conn), (ov, other)):
        c.block_storage.wait_for_delete(vol, interval=0.2, wait=60)


# ---------------------------------------------------------------------------
# snapshots, clones, backups (cinder-backup with the POSIX driver)

MIB = 1024 ** 2
GIB = 1024 ** 3
# Where markers go: the start, and past the middle of a 1 GiB volume (a data
# extent far from the first one).
MARK_OFFSETS = (0, 700 * MIB + 4096)


def marker(tag):
    return ('realcloud-marker:%s:' % tag).encode().ljust(64, b'#')


def write_marker(path, tag):
    """Write the marker at MARK_OFFSETS of a file or block device, durably
    (a loop device's buffered writes reach the backing file on fsync)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        for off in MARK_OFFSETS:
            os.pwrite(fd, marker(tag), off)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_marker(path, tag):
    """True when every marker of tag is there; raise on a partial copy."""
    fd = os.open(path, os.O_RDONLY)
    try:
        found = [os.pread(fd, 64, off) == marker(tag) for off in MARK_OFFSETS]
    finally:
        os.close(fd)
    if any(found) and not all(found):
        raise AssertionError('%s holds marker %s only partly: %s'
                             % (path, tag, found))
    return all(found)


def allocated(path):
    st = os.stat(path)
    return {'size': st.st_size, 'allocated': st.st_blocks * 512}


def wait_resource(conn, kind, res_id, status, timeout=120, mv='3.0'):
    """Poll GET /<kind>s/<id> (raw) until status; return (body, statuses
    seen).  status None: wait for 404."""
    end = time.monotonic() + timeout
    seen = []
    while True:
        r = raw(conn, 'GET', '/%ss/%s' % (kind, res_id), microversion=mv)
        now = r['status'] == 404 and 404 or (
            r['status'] == 200 and r['body'][kind]['status'])
        if not seen or seen[-1] != now:
            seen.append(now)
        if (status is None and now == 404) or (status is not None and
                                                now == status):
            return r['body'], seen
        if now in ('error', 'error_deleting', 'error_restoring') or \
                time.monotonic() > end:
            raise RuntimeError('%s %s is %s, wanted %s (seen %s)'
                               % (kind, res_id, now, status, seen))
        time.sleep(0.05)


def follow(conn, kind, res_id, final, others=(), timeout=90):
    """Poll a resource until its status is in final, and others (kind, id)
    beside it; return (body, seconds, statuses seen, statuses of others)."""
    t = time.monotonic()
    seen, other_seen = [], {o: [] for o in others}
    while True:
        r = raw(conn, 'GET', '/%ss/%s' % (kind, res_id))
        body = r['body'].get(kind) if r['status'] == 200 else None
        now = body['status'] if body else r['status']
        if not seen or seen[-1] != now:
            seen.append(now)
        for o in others:
            ro = raw(conn, 'GET', '/%ss/%s' % o)
            st = ro['body'][o[0]]['status'] if ro['status'] == 200 else \
                ro['status']
            if not other_seen[o] or other_seen[o][-1] != st:
                other_seen[o].append(st)
        if now in final:
            return (body, round(time.monotonic() - t, 2), seen,
                    [other_seen[o] for o in others])
        if time.monotonic() - t > timeout:
            raise RuntimeError('%s %s is %s after %d s (seen %s)'
                               % (kind, res_id, now, timeout, seen))
        time.sleep(0.05)


def post(conn, path, body, mv='3.0', want=(202,)):
    r = raw(conn, 'POST', path, microversion=mv, json=body)
    if r['status'] not in want:
        raise AssertionError('POST %s at %s: %s' % (path, mv, r))
    return r


def sys_loop(dev, attr):
    with open('/sys/block/%s/loop/%s' % (os.path.basename(dev), attr)) as f:
        return f.read().strip()


def snapshots_and_backups(dir, props, local):
    import openstack
    conn = openstack.connect(cloud='realcloud')
    vdir = os.path.join(dir, 'volumes')
    vpath = lambda vid: os.path.join(vdir, 'volume-' + vid)  # noqa: E731
    spath = lambda sid: os.path.join(vdir, 'snapshot-' + sid)  # noqa: E731
    made = {'volumes': [], 'snapshots': [], 'backups': []}

    def volume(name, mv='3.0', **extra):
        r = post(conn, '/volumes', {'volume': dict(
            {'size': 1, 'name': name}, **extra)}, mv=mv)
        vid = r['body']['volume']['id']
        made['volumes'].append(vid)
        body, seen = wait_resource(conn, 'volume', vid, 'available')
        return vid, r['body']['volume']['status'], seen

    # -- an available volume with data, and its snapshot
    # fuxi-like metadata: which copies carry it?
    avail, _, _ = volume('rc-snap-src', metadata={
        'volume_from': 'fuxi', 'fstype': 'ext4'})
    write_marker(vpath(avail), 'avail')
    r = post(conn, '/snapshots', {'snapshot': {
        'volume_id': avail, 'name': 'rc-snap-avail'}})
    snap_a = r['body']['snapshot']['id']
    made['snapshots'].append(snap_a)
    note('snapshot create (available volume): POST response', r)
    body, took, seen, (vol_seen,) = follow(
        conn, 'snapshot', snap_a, ('available', 'error'),
        others=[('volume', avail)])
    note('snapshot create (available volume): statuses seen / s',
         [seen, took])
    note('snapshot create (available volume): volume statuses meanwhile',
         vol_seen)
    assert seen[-1] == 'available', seen
    note('snapshot GET body (3.0)', body)
    note('snapshot GET body (3.71)', raw(conn, 'GET', '/snapshots/' + snap_a,
                                         microversion='3.71')['body'])
    assert read_marker(spath(snap_a), 'avail')
    note('snapshot file: size / allocated bytes', allocated(spath(snap_a)))
    assert allocated(spath(snap_a))['allocated'] < 64 * MIB

    # -- data written after the snapshot is not in it; then the copies
    write_marker(vpath(avail), 'later')
    assert not read_marker(spath(snap_a), 'later')
    assert read_marker(spath(snap_a), 'avail')

    t = time.monotonic()
    from_snap, st, seen = volume('rc-from-snap', snapshot_id=snap_a)
    note('volume from snapshot: POST status / statuses seen / s',
         [st, seen, round(time.monotonic() - t, 2)])
    assert read_marker(vpath(from_snap), 'avail')
    note('volume from snapshot: metadata (source volume has some)',
         conn.block_storage.get_volume(from_snap).metadata)
    big, _, _ = volume('rc-from-snap-2g', snapshot_id=snap_a, size=2)
    assert os.stat(vpath(big)).st_size == 2 * GIB
    assert read_marker(vpath(big), 'avail')
    note('volume from snapshot, size 2 (snapshot of 1 GiB): file size',
         allocated(vpath(big)))

    t = time.monotonic()
    clone, st, seen = volume('rc-clone', source_volid=avail)
    note('clone of an available volume: POST status / statuses seen / s',
         [st, seen, round(time.monotonic() - t, 2)])
    assert read_marker(vpath(clone), 'later')
    note('clone: metadata (source volume has some)',
         conn.block_storage.get_volume(clone).metadata)

    note('DELETE a volume that has a snapshot',
         raw(conn, 'DELETE', '/volumes/' + avail))

    # -- an in-use volume (attachment, os-brick LOCAL), data through the loop
    inuse, _, _ = volume('rc-inuse')
    att = conn.block_storage.create_attachment(inuse, connector=props,
                                               mode='rw')
    ci = att.connection_info
    device = local.connect_volume(ci)
    conn.block_storage.complete_attachment(att.id)
    wait_volume(conn, inuse, 'in-use')
    dev = ci['device_path']
    write_marker(dev, 'inuse')  # through the loop device, not the file

    for label, body, mv in (
            ('at 3.0 without force', {}, '3.0'),
            ('at 3.65 with force false', {'force': False}, '3.65'),
            ('at 3.66 with force false', {'force': False}, '3.66'),
            ('at 3.66 without force', {}, '3.66')):
        r = raw(conn, 'POST', '/snapshots', microversion=mv, json={
            'snapshot': dict({'volume_id': inuse, 'name': 'rc-s'}, **body)})
        note('snapshot of an in-use volume ' + label, r)
        if r['status'] == 202:
            sid = r['body']['snapshot']['id']
            made['snapshots'].append(sid)
            wait_resource(conn, 'snapshot', sid, 'available')
    r = post(conn, '/snapshots', {'snapshot': {
        'volume_id': inuse, 'name': 'rc-snap-inuse', 'force': True}})
    snap_u = r['body']['snapshot']['id']
    made['snapshots'].append(snap_u)
    _, took, seen, (vol_seen,) = follow(
        conn, 'snapshot', snap_u, ('available', 'error'),
        others=[('volume', inuse)])
    note('snapshot create (in-use volume, force): statuses seen / s',
         [seen, took])
    assert seen[-1] == 'available', seen
    note('snapshot create (in-use volume): volume statuses meanwhile',
         vol_seen)
    assert read_marker(spath(snap_u), 'inuse')

    clone_u, st, seen = volume('rc-clone-inuse', source_volid=inuse)
    note('clone of an in-use volume: statuses seen', seen)
    assert read_marker(vpath(clone_u), 'inuse')
    assert loops_of(vpath(inuse)) == [dev]

    # -- backups
    def backup(label, mv='3.0', during=None, **body):
        t = time.monotonic()
        r = post(conn, '/backups', {'backup': dict(
            {'name': 'rc-' + label.replace(' ', '-')}, **body)}, mv=mv)
        bid = r['body']['backup']['id']
        made['backups'].append(bid)
        note('backup %s: POST response' % label, r)
        src_kind, src_id = (('snapshot', body['snapshot_id'])
                            if body.get('snapshot_id') else
                            ('volume', body['volume_id']))
        src_seen, names = [], set()
        end = time.monotonic() + 90
        seen = []
        while True:
            b = raw(conn, 'GET', '/backups/' + bid)['body']['backup']
            if not seen or seen[-1] != b['status']:
                seen.append(b['status'])
            s = raw(conn, 'GET', '/%ss/%s' % (src_kind, src_id))
            s = s['body'][src_kind]['status']
            if not src_seen or src_seen[-1] != s:
                src_seen.append(s)
            for v in raw(conn, 'GET', '/volumes')['body']['volumes']:
                names.add(v['name'])
            if b['status'] in ('available', 'error'):
                break
            if during and b['status'] == 'creating':
                during(bid)
                during = None
            assert time.monotonic() < end, seen
            time.sleep(0.05)
        took = round(time.monotonic() - t, 2)
        for _ in range(20):  # the source's status comes back after
            s = raw(conn, 'GET', '/%ss/%s' % (src_kind, src_id))
            s = s['body'][src_kind]['status']
            if src_seen[-1] != s:
                src_seen.append(s)
            if s in ('available', 'in-use'):
                break
            time.sleep(0.1)
        note('backup %s: statuses seen / s' % label, [seen, took])
        note('backup %s: %s statuses meanwhile' % (label, src_kind), src_seen)
        note('backup %s: extra volume names listed meanwhile' % label,
             sorted(n for n in names if n and n.startswith('backup-')))
        assert seen[-1] == 'available', (seen, b)
        return bid, b

    def while_backing_up(bid):
        note('while a backup of it runs: DELETE the volume',
             raw(conn, 'DELETE', '/volumes/' + avail))
        note('while a backup of it runs: snapshot the volume',
             raw(conn, 'POST', '/snapshots', json={'snapshot': {
                 'volume_id': avail, 'name': 'rc-never'}}))
        r = raw(conn, 'POST', '/attachments', microversion='3.27', json={
            'attachment': {'volume_uuid': avail}})
        note('while a backup of it runs: attach the volume (3.27)', r)
        if r['status'] == 200:
            raw(conn, 'DELETE', '/attachments/' + r['body']['attachment']['id'],
                microversion='3.27')
        note('while it is being created: DELETE the backup',
             raw(conn, 'DELETE', '/backups/' + bid))

    b_avail, body = backup('of an available volume', volume_id=avail,
                           during=while_backing_up)
    note('backup GET body (3.0)', body)
    note('backup GET body (3.71)', raw(conn, 'GET', '/backups/' + b_avail,
                                       microversion='3.71')['body'])
    note('backup of an in-use volume without force',
         raw(conn, 'POST', '/backups', json={'backup': {
             'volume_id': inuse, 'name': 'rc-b-noforce'}}))
    b_inuse, _ = backup('of an in-use volume with force', volume_id=inuse,
                        force=True)
    # The safety rule: cinder-backup's connection never takes the loop
    # device of the live attachment away.
    assert loops_of(vpath(inuse)) == [dev], loops_of(vpath(inuse))
    assert sys_loop(dev, 'backing_file') == vpath(inuse)
    assert sys_loop(dev, 'autoclear') == '0'
    assert read_marker(dev, 'inuse')
    write_marker(dev, 'inuse-after')
    assert read_marker(vpath(inuse), 'inuse-after')
    # The same rule for any connection without an attachment record: the
    # legacy connection actions with another host's connector.
    foreign = {'host': 'rc-elsewhere', 'ip': '127.0.0.2', 'multipath': False,
               'platform': 'x86_64', 'os_type': 'linux'}
    r = raw(conn, 'POST', '/volumes/%s/action' % inuse, json={
        'os-initialize_connection': {'connector': foreign}})
    note('os-initialize_connection of an in-use volume (another host)', r)
    assert r['body']['connection_info']['data']['device_path'] == dev, r
    r = raw(conn, 'POST', '/volumes/%s/action' % inuse, json={
        'os-terminate_connection': {'connector': foreign}})
    note('os-terminate_connection of an in-use volume (another host)', r)
    assert loops_of(vpath(inuse)) == [dev], loops_of(vpath(inuse))
    assert read_marker(dev, 'inuse-after')
    note('in-use volume after its backup: loop device / status',
         [loops_of(vpath(inuse)),
          conn.block_storage.get_volume(inuse).status])
    b_snap, _ = backup('from a snapshot', volume_id=avail,
                       snapshot_id=snap_a)
    note('backups dir: files', sum(len(f) for _, _, f in os.walk(
        os.path.join(dir, 'backups'))))

    # -- restores: into a new volume, into an existing available one
    def restore(label, bid, tag, **body):
        t = time.monotonic()
        r = post(conn, '/backups/%s/restore' % bid, {'restore': body})
        note('restore %s: POST response' % label, r)
        vid = r['body']['restore']['volume_id']
        if vid not in made['volumes']:
            made['volumes'].append(vid)
        seen, bseen = [], []
        end = time.monotonic() + 90
        while True:
            v = raw(conn, 'GET', '/volumes/' + vid)['body']['volume']
            b = raw(conn, 'GET', '/backups/' + bid)['body']['backup']
            if not seen or seen[-1] != v['status']:
                seen.append(v['status'])
            if not bseen or bseen[-1] != b['status']:
                bseen.append(b['status'])
            if v['status'] in ('available', 'error', 'error_restoring') \
                    and b['status'] != 'restoring':
                break
            assert time.monotonic() < end, (seen, bseen)
            time.sleep(0.05)
        note('restore %s: volume / backup statuses seen / s' % label,
             [seen, bseen, round(time.monotonic() - t, 2)])
        note('restore %s: volume metadata / name / description' % label,
             [v.get('metadata'), v.get('name'), v.get('description')])
        assert seen[-1] == 'available', seen
        assert read_marker(vpath(vid), tag), tag
        assert loops_of(vpath(vid)) == []
        note('restore %s: file' % label, allocated(vpath(vid)))
        return vid

    restore('of the in-use backup into a new volume', b_inuse, 'inuse',
            name='rc-restored')
    target, _, _ = volume('rc-restore-target')
    write_marker(vpath(target), 'old')
    restore('of the available backup into an existing volume', b_avail,
            'later', volume_id=target)
    assert not read_marker(vpath(target), 'old')
    restore('of the snapshot backup into a new volume (no name)', b_snap,
            'avail')
    # A volume made from a backup (3.47): Cinder creates it, then restores.
    r = post(conn, '/volumes', {'volume': {'backup_id': b_snap}}, mv='3.47')
    note('volume from a backup (3.47): POST response', r)
    vid = r['body']['volume']['id']
    made['volumes'].append(vid)
    v, took, seen, (bseen,) = follow(conn, 'volume', vid,
                                     ('available', 'error'),
                                     others=[('backup', b_snap)])
    note('volume from a backup (3.47): volume / backup statuses seen / s',
         [seen, bseen, took])
    note('volume from a backup (3.47): metadata / name / description',
         [v.get('metadata'), v.get('name'), v.get('description')])
    assert seen[-1] == 'available', seen
    assert read_marker(vpath(vid), 'avail')
    follow(conn, 'backup', b_snap, ('available',))
    note('restore into an in-use volume', raw(
        conn, 'POST', '/backups/%s/restore' % b_avail,
        json={'restore': {'volume_id': inuse}}))

    # -- revert to the latest snapshot (3.40): 'later' is gone again
    assert read_marker(vpath(avail), 'later')
    r = raw(conn, 'POST', '/volumes/%s/action' % avail, microversion='3.40',
            json={'revert': {'snapshot_id': snap_a}})
    note('revert to snapshot (3.40): response', r)
    _, took, seen, (sseen,) = follow(conn, 'volume', avail,
                                     ('available', 'error'),
                                     others=[('snapshot', snap_a)])
    note('revert to snapshot: volume / snapshot statuses seen / s',
         [seen, sseen, took])
    assert seen[-1] == 'available', seen
    assert read_marker(vpath(avail), 'avail')
    assert not os.path.exists(vpath(avail) + '.revert')
    note('revert to snapshot: snapshots of the volume after',
         [x['name'] for x in raw(conn, 'GET', '/snapshots?volume_id=' + avail)[
             'body']['snapshots']])

    # -- deletes: backups, snapshots, then volumes
    note('DELETE a snapshot that has a volume made from it? (allowed)',
         raw(conn, 'DELETE', '/snapshots/' + snap_a)['status'])
    _, took, seen, _ = follow(conn, 'snapshot', snap_a,
                              (404, 'error_deleting'))
    made['snapshots'].remove(snap_a)
    note('snapshot delete: statuses seen / s', [seen, took])
    assert not os.path.exists(spath(snap_a))
    for bid in list(made['backups']):
        r = raw(conn, 'DELETE', '/backups/' + bid)
        assert r['status'] == 202, r
        _, took, seen, _ = follow(conn, 'backup', bid, (404, 'error'))
        made['backups'].remove(bid)
    note('backup delete: DELETE response / statuses seen / s',
         [r, seen, took])
    note('GET a deleted backup', raw(conn, 'GET', '/backups/' + b_avail))
    note('GET a deleted snapshot', raw(conn, 'GET', '/snapshots/' + snap_a))
    for sid in list(made['snapshots']):
        conn.block_storage.delete_snapshot(sid)
        wait_resource(conn, 'snapshot', sid, None)
        made['snapshots'].remove(sid)
    local.disconnect_volume(ci, device)
    conn.block_storage.delete_attachment(att.id, ignore_missing=False)
    wait_volume(conn, inuse, 'available', timeout=30)
    assert loops_of(vpath(inuse)) == []
    for vid in made['volumes']:
        conn.block_storage.delete_volume(vid)
    for vid in made['volumes']:
        wait_resource(conn, 'volume', vid, None)
        assert not os.path.exists(vpath(vid))
    left = [n for n in os.listdir(vdir)]
    assert left == [], left
    note('backups dir after the deletes: files', sum(
        len(f) for _, _, f in os.walk(os.path.join(dir, 'backups'))))



def expiry(seconds):
    import openstack
    conns = {c: openstack.connect(cloud=c) for c in CLOUDS}
    first = conns['realcloud']
    old_token = first.session.get_token()
    url = first.block_storage.get_endpoint() + '/volumes'
    end = time.monotonic() + seconds
    calls = 0
    tokens = {c: set() for c in CLOUDS}
    while time.monotonic() < end:
        for c, conn in conns.items():
            list(conn.block_storage.volumes())
            tokens[c].add(conn.session.get_token()[-12:])
            calls += 1
        time.sleep(2)
    note('expiry: calls over %d s' % seconds, calls)
    note('expiry: distinct tokens per cloud',
         {c: len(t) for c, t in tokens.items()})
    resp = first.session.get(url, raise_exc=False, authenticated=False,
                             headers={'X-Auth-Token': old_token})
    note('expiry: cinder answer to a %d s old token' % seconds,
         [resp.status_code, resp.headers.get('WWW-Authenticate'),
          resp.text[:300]])


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--dir', required=True)
    p.add_argument('--expiry', type=int, default=0,
                   help='only run the token-expiry check for this long')
    p.add_argument('--snapshots-only', action='store_true',
                   help='only the snapshot, clone and backup checks')
    p.add_argument('--out')
    args = p.parse_args()
    dir = os.path.abspath(args.dir)
    os.environ['OS_CLIENT_CONFIG_FILE'] = os.path.join(dir, 'clouds.yaml')
    for k in list(os.environ):
        if k.startswith('OS_') and k != 'OS_CLIENT_CONFIG_FILE':
            del os.environ[k]
    out = args.out or os.path.join(
        dir, 'observed-expiry.json' if args.expiry else 'observed.json')
    try:
        if args.expiry:
            expiry(args.expiry)
        else:
            capture_keystoneauth()
            props, local = brick_setup(dir)
            note('os-brick connector properties', props)
            if not args.snapshots_only:
                for cloud in CLOUDS:
                    attach_cycle(cloud, dir, props, local)
                multiattach(dir, props)
                filters_and_errors(dir)
            snapshots_and_backups(dir, props, local)
    finally:
        with open(out, 'w') as f:
            json.dump(OBS, f, indent=2, default=str)
    print('OK: all checks passed; observations in %s' % out)


if __name__ == '__main__':
    sys.exit(main())
