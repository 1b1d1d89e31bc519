"""Use cases over the Store and Broker interfaces: auth, conversations, messaging, presence.

Each service is plain async code with its collaborators passed in; none knows websockets. They
answer a ``Session`` (one authenticated connection) through its ``reply``/``push`` methods.
"""
