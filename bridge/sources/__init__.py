"""Where rows come from and where status goes back: one package per medium.

The interface is in ``bridge.sources.base``; which package serves which ``type:`` is in
``bridge.registry``. ``_table`` holds what the media share (headers, keys, placement).
"""
