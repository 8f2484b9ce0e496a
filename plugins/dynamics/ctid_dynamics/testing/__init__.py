"""Test kit of ctid-dynamics: a fake Dynamics Web API with its identity providers, and factories of ctid objects."""
