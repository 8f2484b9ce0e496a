"""ctid-dynamics: the Microsoft Dynamics 365 / Dynamics CRM adapter for ctid (Web API, online and on-prem)."""

__version__ = "0.1.0"
