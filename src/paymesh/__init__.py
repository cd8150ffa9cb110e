"""paymesh: an open-source payment platform."""

import os

# gRPC's C core writes its own plain-text lines to stderr (it reads this when gRPC is
# imported, so before anything else): silent by default, so that every line paymesh
# writes is JSON. GRPC_VERBOSITY=ERROR (or INFO, DEBUG) in the environment wins.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

__version__ = "0.1.0"
