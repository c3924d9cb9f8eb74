"""Relay nodes that share one namespace over NATS (docs/cluster.md).

A listener connects (through a load balancer) to any node; a sender reaches any
node.  When the sender's node has no listener for the entity, it asks the
cluster on the entity's NATS subject (a queue group: one node with a listener
answers); that node tells its listener to open the rendezvous on the SENDER's
node (``node_url``), so the two halves meet there and bodies never cross a
third node.  NATS's "no responders" is the immediate "no listener" answer.

Modules: ``config`` (the ``[cluster]`` table), ``subjects`` and ``messages``
(what crosses NATS: pure, parsed once), ``peers`` (what the other nodes said
they hold), ``link`` (the node's NATS connection) over ``natsclient`` (our own
NATS client: ``natswire`` the protocol, ``nkeys`` creds files), ``direct`` (asks
sent straight to a node holding listeners over a link between the two nodes,
NATS being the fallback), ``remote`` (a
listener on another node, as the sender's node sees it), ``node`` (the glue,
hooked into the relay through ``relay.state.RelayState.cluster``).  Nothing here
is imported unless a cluster is configured; no NATS library is needed.
"""
