"""Where annotations go: one package per platform (config, client, send, export, rules).

The interface and its optional capabilities are in ``bridge.targets.base``; which package
serves which ``type:`` is in ``bridge.registry``.
"""
