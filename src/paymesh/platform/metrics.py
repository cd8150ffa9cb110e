"""The process's Prometheus metrics, defined in one place (on the default registry).

Nothing here serves them; an HTTP ``/metrics`` endpoint exposes the default
registry as it is.
"""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["KAFKA_DEAD_LETTERS"]

KAFKA_DEAD_LETTERS = Counter(
    "paymesh_kafka_dead_letters_total",
    "Records a Kafka consumer group moved to a dead-letter topic (<topic>.dlq).",
    ["group", "topic"],
)
