"""Configuration as code: YAML (+ ``conf.d/``) validated by pydantic models of the core and plugins."""
