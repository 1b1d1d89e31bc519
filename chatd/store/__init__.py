"""Storage: the Protocols the services use (``base``) and their implementations by backend."""
