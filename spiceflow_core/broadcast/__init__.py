"""Broadcasting books to consumers: the wire schema, the ZeroMQ publisher and the actor
that owns it, and the consumer side (subscriber client and ``spiceflow tail``)."""

from spiceflow_core.broadcast.publisher import Publisher
from spiceflow_core.broadcast.subscriber import Received, Subscriber, SyncSubscriber

__all__ = ["Publisher", "Received", "Subscriber", "SyncSubscriber"]
