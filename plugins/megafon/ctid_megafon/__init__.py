"""ctid connector for the MegaFon virtual PBX (ITooLabs CRM API); see README.md for configuration."""

__version__ = "0.1.0"
