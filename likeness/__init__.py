"""Likeness: face verification and identification over gRPC."""
