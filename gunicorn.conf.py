"""gunicorn settings: gevent workers, nothing opened before the fork.

`gunicorn -c gunicorn.conf.py wsgi:app`; `--bind` etc. on the command line override these.
Settings are read (and checked) here so a bad value stops the master with a message naming it.
"""

import sys

from gateway.settings import SettingsError, load_settings

try:
    _settings = load_settings()
except SettingsError as exc:
    sys.stderr.write(f"gateway: invalid setting: {exc}\n")
    raise SystemExit(2) from None

bind = [f"0.0.0.0:{_settings.gateway_port}"]
workers = _settings.gateway_workers
worker_class = "gevent"
worker_connections = _settings.gateway_worker_connections
# No preload: the app (and every socket, thread, producer and pool it makes) is created in each worker
# after the fork, once gevent has patched the standard library there.
preload_app = False
# Streams are long-lived; gevent workers heartbeat on their own, so this bounds only a stuck worker.
timeout = 60
graceful_timeout = 10
keepalive = 5
loglevel = _settings.log_level.lower()
accesslog = "-"
# %(U)s is the path without the query string: stream URLs may carry ?access_token=, never logged.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms pid=%(p)s'
