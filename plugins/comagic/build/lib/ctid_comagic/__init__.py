"""ctid connector for CoMagic / UIS (also CallGear, Novofon); see README.md for configuration."""

__version__ = "0.1.0"
