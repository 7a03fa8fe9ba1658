# syntax=docker/dockerfile:1
# maintenance-gateway: the image ECS runs beside nginx and Django.
#   docker build -t maintenance-gateway .
#   docker run --rm -p 8080:8080 -e GATEWAY_HOST=0.0.0.0 maintenance-gateway
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/gateway
# Dependencies first, pinned, so that a code change reuses this layer.
COPY requirements.lock ./
RUN /opt/gateway/bin/pip install --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN /opt/gateway/bin/pip install --no-deps . \
 && find /opt/gateway -name '__pycache__' -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gateway
COPY --from=build /opt/gateway /opt/gateway
ENV PATH=/opt/gateway/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_PORT=8080
USER 10001
WORKDIR /tmp
EXPOSE 8080
# uvicorn drains on SIGTERM: in-flight requests get GATEWAY_DRAIN_TIMEOUT seconds.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["maintenance-gateway", "healthcheck"]
ENTRYPOINT ["maintenance-gateway"]
CMD ["serve"]
