"""Generated gRPC stubs of the Likeness API (do not edit; `make proto`)."""
