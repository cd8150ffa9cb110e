"""The contracts between services: generated gRPC code (``<service>/v1``) and
the event envelope and topic names (:mod:`paymesh.contracts.events`)."""
