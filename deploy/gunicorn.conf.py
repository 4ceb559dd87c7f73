"""gunicorn settings of an app container: the same shape as the native lab's instances.

The native cluster passes these as command-line flags (``sessions_lab/cluster/apps.py``);
a container gets them here, computed from the same functions and constants, so
both targets run one worker in ``sticky`` mode (sessions in local memory are
per process) and the same timeouts everywhere.
"""

import os

from sessions_lab.cluster.apps import GRACEFUL_TIMEOUT, KEEP_ALIVE, worker_shape

# The port every app container listens on inside the compose network.
bind = "0.0.0.0:8000"
workers, threads = worker_shape(os.environ.get("SESSION_MODE", "db"))
proc_name = os.environ.get("INSTANCE_NAME", "app")
preload_app = True
graceful_timeout = GRACEFUL_TIMEOUT
keepalive = KEEP_ALIVE
# One instance per container: the control socket only needs a writable place.
control_socket = "/tmp/gunicorn.ctl"  # noqa: S108 - private to the container
accesslog = None
errorlog = "-"
