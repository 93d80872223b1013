"""Arize Phoenix: the config model (config), the adapter (target: send and confirm), the REST
client (client), export (export) and annotation configs as rules (rules)."""
