"""Cryptography for chatd clients.

``primitives`` is the only importer of ``cryptography.hazmat``.
"""
