"""Secrets never reach fuxi-server's log: the handler filter fuxi.server installs."""

import io
import logging
import subprocess
import sys

import pytest

from fuxi.log_redaction import SecretFilter, mask_secrets

KEY = "AQAj/QhryD2mNxAAlgNbubcCzzcFBCVmTPeMFQ=="


@pytest.mark.parametrize("text, secret", [
    # keystoneauth's DEBUG log of a Manila access-rule listing (the leak the functional test found)
    ('RESP BODY: {"access_list": [{"access_to": "fuxi-node1", "access_key": "%s"}]}' % KEY, KEY),
    # a Cinder connection_info with CHAP and RBD secrets, as a dict's repr
    ("{'auth_method': 'CHAP', 'auth_password': 'chap-pw', 'keyring': '%s', 'secret_uuid': 'u1'}" % KEY, "chap-pw"),
    # an auth body, should any library log one
    ('curl -d \'{"auth": {"identity": {"password": {"user": {"password": "pw-\\"x"}}}}}\'', 'pw-\\"x'),
    # a record's repr, keyword arguments, a query string
    ("AccessRule(id='r1', access_to='fuxi-node1', access_key='%s')" % KEY, KEY),
    ("connect(token=gAAAAABk1234567890, project=p)", "gAAAAABk1234567890"),
    ("GET /v3/x?application_credential_secret=s3cr3t&limit=1", "s3cr3t"),
])
def test_secret_fields_are_masked(text, secret):
    masked = mask_secrets(text)
    assert secret not in masked and "***" in masked


@pytest.mark.parametrize("text", [
    'RESP BODY: {"access_list": [{"access_to": "fuxi-node1", "access_type": "cephx", "state": "active"}]}',
    "running ['ceph-fuse', '-m', 'mon:6789', '--id', 'fuxi-node1', '-k', '/s/keys/r1.keyring', '/mnt']",
    'REQ: curl -g -i -X GET http://127.0.0.1/v3 -H "X-Auth-Token: {SHA256}0123abcd"',
    '"password_expires_at": null',
])
def test_text_without_secret_values_is_kept(text):
    assert mask_secrets(text) == text


def logger_with_filter():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretFilter())
    log = logging.getLogger(f"test-redaction-{id(stream)}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    return log, stream


def test_the_filter_masks_arguments_and_tracebacks():
    log, stream = logger_with_filter()
    log.debug("RESP BODY: %s", '{"access_key": "%s"}' % KEY)
    try:
        raise RuntimeError(f"rule refused: access_key='{KEY}'")
    except RuntimeError:
        log.exception("mount failed")
    text = stream.getvalue()
    assert KEY not in text
    assert 'RESP BODY: {"access_key": "***"}' in text and "access_key='***'" in text


def test_a_record_that_cannot_be_formatted_is_left_to_the_handler():
    log, _stream = logger_with_filter()
    logging.raiseExceptions, saved = False, logging.raiseExceptions
    try:
        log.debug("two %s %s", "only-one")  # must not raise at the call site
    finally:
        logging.raiseExceptions = saved


def test_fuxi_server_logging_masks_secrets_of_every_library():
    code = (
        "import logging\n"
        "from fuxi.server import _configure_logging\n"
        "_configure_logging('DEBUG')\n"
        f"logging.getLogger('keystoneauth.session').debug('RESP BODY: %s', '{{\"access_key\": \"{KEY}\"}}')\n"
        "logging.getLogger('os_brick.initiator.connector').debug(\"props {'auth_password': 'chap-pw'}\")\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "RESP BODY" in done.stderr and "props" in done.stderr
    assert KEY not in done.stderr and "chap-pw" not in done.stderr
