# syntax=docker/dockerfile:1
# The Registry image: gRPC Registry over Qdrant (embedded "edge" store or a
# Qdrant server/cluster). Installs the core package and the "registry" extra
# only: no TensorFlow, dlib or OpenCV, and no embedder/ or trainer/ code.
#
# Build from the repository root:
#   docker build -f deploy/registry.Dockerfile -t likeness-registry .
# Configuration: LIKENESS_REGISTRY_* environment variables (server/settings.py).

ARG PYTHON_IMAGE=python:3.11-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# Third-party dependencies in their own layer, keyed on pyproject.toml only,
# so that a source change does not reinstall them.
COPY pyproject.toml deploy/requirements.py ./
RUN python requirements.py pyproject.toml registry > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt
COPY README.md ./
COPY likeness ./likeness
COPY server ./server
RUN pip install --no-cache-dir --no-deps .

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 likeness \
    && useradd --system --uid 10001 --gid likeness --home-dir /var/lib/likeness \
       --create-home --shell /usr/sbin/nologin likeness
COPY --from=build /opt/venv /opt/venv
COPY deploy/healthcheck.py deploy/create_gallery.py /opt/likeness/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LIKENESS_REGISTRY_HOST=0.0.0.0 \
    LIKENESS_REGISTRY_DATA_DIR=/var/lib/likeness
WORKDIR /var/lib/likeness
USER 10001:10001
# gRPC, Prometheus /metrics.
EXPOSE 50052 9095
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/opt/likeness/healthcheck.py", "registry"]
CMD ["python", "-m", "server.main"]
