"""Manila's API (manila-api) as a WSGI application for gunicorn, as used by realcloud.py.

Manila builds its application after parsing ``sys.argv`` with oslo.config;
under gunicorn that argv holds gunicorn's own flags, which Manila refuses.
Replace it with the configuration file named by REALCLOUD_MANILA_CONF (and
the log file named by REALCLOUD_MANILA_LOG, when set).
"""
import os
import sys

sys.argv = [sys.argv[0], '--config-file', os.environ['REALCLOUD_MANILA_CONF']]
if os.environ.get('REALCLOUD_MANILA_LOG'):
    sys.argv += ['--log-file', os.environ['REALCLOUD_MANILA_LOG']]

from manila.wsgi import wsgi as _manila_wsgi  # noqa: E402

application = _manila_wsgi.initialize_application()
