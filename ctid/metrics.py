"""Prometheus metrics of one ctid process (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.webhooks = Counter("ctid_webhook_requests_total", "Webhook requests by connector and HTTP status",
                                ["connector", "status"], registry=r)
        self.events = Counter("ctid_events_accepted_total", "New call events accepted", ["connector"], registry=r)
        self.duplicates = Counter("ctid_events_duplicate_total", "Redelivered events ignored", ["connector"],
                                  registry=r)
        self.commit_seconds = Histogram("ctid_event_commit_seconds", "Time from reduce to commit of events",
                                        registry=r, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
        self.active_calls = Gauge("ctid_active_calls", "Calls not yet ended", registry=r)
        self.agents_available = Gauge("ctid_agents_available", "Agents available and not busy", registry=r)
        self.outbox_delivered = Counter("ctid_outbox_delivered_total", "CRM jobs delivered", ["kind"], registry=r)
        self.outbox_failures = Counter("ctid_outbox_failures_total", "CRM job attempts that failed", ["kind"],
                                       registry=r)
        self.crm_lookups = Counter("ctid_crm_lookups_total", "Screen-pop lookups by result", ["result"], registry=r)
        # Every exception raised by plugin code that ctid caught (ctid/plugin_errors.py): observers,
        # registration hooks, plugin routes; connectors and CRM adapters (hardening) use it too.
        self.plugin_errors = Counter("ctid_plugin_errors_total", "Exceptions raised by plugin code, by plugin and place",
                                     ["plugin", "where"], registry=r)
        self.dead_letters = Counter("ctid_dead_letters_total", "Webhooks kept as dead letters", ["connector"],
                                    registry=r)
        self.commands = Counter("ctid_commands_total", "Call commands by name and result", ["command", "result"],
                                registry=r)

        self.hub_connections = Gauge("ctid_hub_connections", "Open hub (SignalR) connections", registry=r)
        self.backplane_up = Gauge("ctid_backplane_up", "1 when the hub backplane is connected", registry=r)

    def render(self, hub=None) -> bytes:
        if hub is not None:
            health = hub.health()
            self.hub_connections.set(health["connections"])
            self.backplane_up.set(1 if health["backplane"].get("ok") else 0)
        return generate_latest(self.registry)
