"""ctid-launcher: the desktop companion of ctid (tray status, CRM pop-up, workstation lock → away)."""

__version__ = "0.1.0"
