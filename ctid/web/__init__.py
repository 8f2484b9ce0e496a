"""ctid's HTTP surface: webhooks, REST API, health, metrics, OpenAPI, the panel's static files."""
