"""Arize Phoenix: the config model (config), the adapter (target) and what else it can do."""
