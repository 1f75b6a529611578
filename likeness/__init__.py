"""Likeness: face verification and identification over gRPC."""

#: The package's version (PEP 440; also the distribution's, read by
#: pyproject.toml). The wire API is versioned apart, by the proto package
#: ``likeness.v1``: every 0.x and 1.x release keeps it compatible (see
#: CHANGELOG.md and likeness.protocompat).
__version__ = "0.2.0.dev0"
