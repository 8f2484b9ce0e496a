"""ctid connector for Avaya IP Office: DevLink3 real-time events, SMDR call log, TAPI / AES call control."""

__version__ = "0.1.0"
