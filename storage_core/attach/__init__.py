"""Putting cloud volumes on this host: one attacher per way of doing it."""
