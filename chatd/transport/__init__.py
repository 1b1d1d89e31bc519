"""The only place that knows websockets: handshake, HTTP endpoints, per-connection read loop."""
