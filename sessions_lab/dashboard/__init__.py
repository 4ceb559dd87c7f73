"""The live lab dashboard: one page an instructor projects while the lab runs.

At a workshop people should *see* requests spread over the instances, an
instance die, and sessions get lost (or not) as it happens, not only in a
report afterwards. The supervisor serves the page from a thread of its own
(``Dashboard``, handed to it by ``sessions_lab.supervise``), so its kill/start
buttons run the very code a CLI request runs, and the page reads everything it
shows from one JSON endpoint:

- the processes, from the supervisor's in-memory state;
- requests per instance, 5xx and retries, from nginx's JSON access log
  (``AccessLogTail``);
- session-loss counts and fault events of a running experiment, from the
  files the experiment runner announces in ``experiment.json``
  (``ExperimentWatch``).
"""

from sessions_lab.dashboard.server import Dashboard

__all__ = ["Dashboard"]
