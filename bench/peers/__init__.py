"""The peers of the failure-pipeline benchmark (bench/bench_pipeline.py).

``plan`` (standard library only) is shared by redrive's side and the peers' side: which
events are poison or transient, the retry schedule, the handler-call counters and what a
settled run must show. The other modules run only in the peers' own virtualenv
(``bench/.peers-venv``, created by bench_pipeline.py), never in redrive's:

- ``dramatiq_app``, ``celery_app``, ``procrastinate_app``: each peer's app, configured as
  its docs recommend for this workload (the settings are in each module's docstring);
- ``runner``: starts one peer's workers, enqueues the events, waits until every event is
  settled in the peer's own store, verifies it, stops the workers by PID and prints one
  JSON line with the time.
"""
