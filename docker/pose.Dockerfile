# syntax=docker/dockerfile:1
# dogsearch pose: dog keypoints and body analysis (torch + onnxruntime); checkpoints in /models
# Build from the repository root: docker build -f docker/pose.Dockerfile .   (or: docker compose build)
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
EXPOSE 8003
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/usr/local/bin/healthcheck.py", "http://127.0.0.1:8003/readyz"]
CMD ["dogsearch", "serve", "pose", "--host", "0.0.0.0", "--port", "8003"]
