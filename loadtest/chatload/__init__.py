"""chatload: a load tester for chatd (scenarios, record and replay, idle connections).

See loadtest/README.md. Console script: ``chatload``.
"""
