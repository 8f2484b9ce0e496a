"""Plugins that ship with ctid, registered through the same hooks as third-party plugins."""
