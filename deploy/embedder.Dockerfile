# syntax=docker/dockerfile:1
# The Embedder image: face detection, alignment and the embedding model
# (TensorFlow CPU, dlib), serving the Embedder gRPC service. Stateless: scale
# it out by running more containers. Ships the model committed under
# embedder/models (package data), so the image needs no download at start.
#
# Build from the repository root:
#   docker build -f deploy/embedder.Dockerfile -t likeness-embedder .
# Configuration: LIKENESS_EMBEDDER_* environment variables (embedder/settings.py).

ARG PYTHON_IMAGE=python:3.11-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# Third-party dependencies (TensorFlow is most of the image) in their own
# layer, keyed on pyproject.toml only, so a source change reuses it.
COPY pyproject.toml deploy/requirements.py ./
RUN python requirements.py pyproject.toml embedder > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt
COPY README.md ./
COPY likeness ./likeness
COPY embedder ./embedder
RUN pip install --no-cache-dir --no-deps .

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 likeness \
    && useradd --system --uid 10001 --gid likeness --home-dir /home/likeness \
       --create-home --shell /usr/sbin/nologin likeness
COPY --from=build /opt/venv /opt/venv
COPY deploy/healthcheck.py /opt/likeness/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=1 \
    LIKENESS_EMBEDDER_HOST=0.0.0.0
WORKDIR /home/likeness
USER 10001:10001
EXPOSE 50051
# Loading TensorFlow and the model takes seconds to tens of seconds.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/opt/likeness/healthcheck.py", "embedder"]
CMD ["python", "-m", "embedder.server"]
