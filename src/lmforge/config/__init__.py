"""The config: its schema (config/schema.py) apart from its loading (config/load.py)."""
