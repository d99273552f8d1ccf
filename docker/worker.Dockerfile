# syntax=docker/dockerfile:1
# dogsearch worker: a Celery worker for bulk indexing jobs (Redis broker); scale with --scale worker=N
# Build from the repository root: docker build -f docker/worker.Dockerfile .   (or: docker compose build)
# CPU by default; docker-compose.gpu.yml passes a CUDA BASE_IMAGE and TORCH_INDEX_URL.
# The build stage is the same in every service's Dockerfile, so BuildKit builds it once for all five.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY docker/python.sh docker/install.sh docker/lock_without_torch.py /usr/local/bin/
RUN python.sh
COPY requirements.txt requirements.lock requirements-nodeps.lock pyproject.toml README.md /app/
RUN TORCH_INDEX_URL="$TORCH_INDEX_URL" install.sh deps
COPY dogsearch /app/dogsearch
COPY models /app/models
RUN install.sh app

FROM ${BASE_IMAGE}
COPY docker/python.sh docker/healthcheck.py /usr/local/bin/
# Named volumes start as copies of these folders, so they belong to the service's user.
RUN python.sh \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin dogsearch \
    && mkdir -p /data /models \
    && chown dogsearch:dogsearch /data /models
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001
# Alive when this node answers a ping through the broker: one worker a container, its node name worker@<the
# container's hostname> (CMD's --name), which this healthcheck and compose's ping.
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD ["sh", "-c", "celery -b \"$DOGSEARCH_BROKER_URL\" inspect ping -d \"worker@$(hostname)\" -t 10 >/dev/null"]
CMD ["dogsearch", "worker", "--pool", "threads", "--concurrency", "2", "--name", "worker@%h"]
