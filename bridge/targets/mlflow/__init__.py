"""MLflow: the config model (config), the adapter (target: send), the REST client (client),
the value mapping (values), request id resolution (ids), export (export) and label schemas
as rules (rules)."""
