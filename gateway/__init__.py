"""The HTTP/JSON gateway: a thin ASGI app (FastAPI) over the Registry,
Admin and Embedder gRPC services, through :class:`likeness.aio.AsyncLikenessClient`."""
