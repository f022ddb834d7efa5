"""Prometheus metrics of one bridge instance, on a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Every metric the bridge exports on `/metrics`; one instance per app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("bridge_events_total", "Events emitted, by type.", ["type"], registry=r)
        self.deliveries = Counter(
            "bridge_deliveries_total", "Webhook delivery attempts, by target and outcome.",
            ["target", "outcome"], registry=r,
        )
        self.sends = Counter("bridge_sends_total", "SMS send outcomes, by outcome.", ["outcome"], registry=r)
        self.upstream_errors = Counter(
            "bridge_upstream_errors_total", "Failed SmsGateway24 calls, by method and kind.",
            ["method", "kind"], registry=r,
        )
        self.unreadable_rows = Counter(
            "bridge_upstream_unreadable_rows_total",
            "Rows of upstream answers skipped because they cannot be read (no usable id or date), each counted once.",
            ["method"], registry=r,
        )
        self.worker_failures = Counter(
            "bridge_worker_failures_total", "Failed passes of a background worker (sender, delivery), by worker.",
            ["worker"], registry=r,
        )
        self.poll_seconds = Histogram(
            "bridge_poll_duration_seconds", "Time one poll of the upstream took.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r,
        )
        member = ["device_id", "sim"]
        self.pool_sent_today = Gauge("bridge_pool_member_sent_today",
                                     "SMS a pool member handed upstream since local midnight.", member, registry=r)
        self.pool_recipients_month = Gauge("bridge_pool_member_recipients_month",
                                           "Distinct recipients of a pool member this calendar month.", member,
                                           registry=r)
        self.pool_usable = Gauge("bridge_pool_member_usable",
                                 "1 while a pool member is online and under its limits.", member, registry=r)
        self.queue_depth = Gauge("bridge_queue_depth", "Work waiting, by queue.", ["queue"], registry=r)
        self.leader = Gauge("bridge_poller_leader", "1 while this replica holds the poller lease.", registry=r)
        self.lease_token = Gauge(
            "bridge_poller_lease_token", "The fencing token of the poller lease this replica holds or last held.",
            registry=r,
        )
        self.claims = Counter(
            "bridge_claims_total", "Rows this replica claimed to work on, by kind (send, delivery).", ["kind"],
            registry=r,
        )
        self.claims_recovered = Counter(
            "bridge_claims_recovered_total",
            "Rows left claimed by a stopped replica (or this one) and put back, by kind.", ["kind"], registry=r,
        )
        self.http_requests = Counter(
            "bridge_http_requests_total", "HTTP API requests, by route and status.", ["route", "status"], registry=r,
        )
