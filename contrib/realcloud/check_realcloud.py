#!/usr/bin/env python3
"""End-to-end check of a running realcloud stack, and a record of what it does.

Needs openstacksdk and os-brick (fuxi's venv, or the system python3 here),
root, mkfs.ext4 and mount.  Not stdlib-only, unlike realcloud.py.

    check_realcloud.py --dir D               # volume/attach cycle per cloud,
                                             # tenancy, error bodies, filters
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
            for cloud in CLOUDS:
                attach_cycle(cloud, dir, props, local)
            multiattach(dir, props)
            filters_and_errors(dir)
    finally:
        with open(out, 'w') as f:
            json.dump(OBS, f, indent=2, default=str)
    print('OK: all checks passed; observations in %s' % out)


if __name__ == '__main__':
    sys.exit(main())
