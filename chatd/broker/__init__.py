"""Fan-out between nodes: the ``Broker`` Protocol and its implementations by backend."""
