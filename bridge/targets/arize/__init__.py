"""Arize AX: the config model (config), the adapter (target), the HTTP client (client), what
both APIs share (common), GraphQL sending (mutations, over graphql and ratelimit) and REST
sending (rest)."""
