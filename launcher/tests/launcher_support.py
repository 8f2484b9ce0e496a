"""Constants the launcher's tests share with their ``ctid serve`` fixture (tests/conftest.py)."""

SECRET = "e2e-webhook-secret"
PASSWORDS = {"alice": "alice-pw", "super": "super-pw"}
