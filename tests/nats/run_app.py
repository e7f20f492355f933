"""The app ``redrive nats run --app tests.nats.run_app:make`` serves in the CLI tests.

Its one handler, on ``<stream in lower case>.work``, fails with a ValueError when the
payload says ``{"fail": true}`` and succeeds otherwise.
"""

from __future__ import annotations

from redrive import Event, RetryPolicy, Settings, open_store
from redrive.transports.nats import JetStreamConsumer


def make(settings: Settings) -> JetStreamConsumer:
    consumer = JetStreamConsumer(open_store(settings.store_url), settings=settings, ack_wait=2.0)

    def work(event: Event) -> None:
        if isinstance(event.payload, dict) and event.payload.get("fail"):
            raise ValueError("asked to fail")

    topic = f"{consumer.options.stream.lower()}.work"
    consumer.subscribe(topic, work, name="work", policy=RetryPolicy(max_attempts=2))
    return consumer
