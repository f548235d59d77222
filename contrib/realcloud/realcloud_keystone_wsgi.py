"""Keystone's WSGI application for gunicorn, as used by realcloud.py.

Keystone parses ``sys.argv`` with oslo.config when it builds its application;
under gunicorn that argv holds gunicorn's own flags and the worker dies on
them (while the listening socket stays open).  Reset argv before loading.
The configuration file comes from OS_KEYSTONE_CONFIG_FILES.
"""
import sys

sys.argv = sys.argv[:1]

from keystone.server import wsgi as _keystone_wsgi  # noqa: E402

application = _keystone_wsgi.initialize_public_application()
