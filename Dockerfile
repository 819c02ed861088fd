# syntax=docker/dockerfile:1
# iskra-ws-sidecar image: the sidecar (`run`, the default) and the demo dashboards (`demo-dashboard`).
#
#   docker build -t iskra-ws-sidecar:0.1.0 .
#   docker run --rm -p 8000:8000 -p 8080:8080 iskra-ws-sidecar:0.1.0 run --upstream ws://host.docker.internal:3001
#
# Two stages: a Rust toolchain builds a release binary; a distroless runtime (glibc + CA certificates,
# no shell, no package manager) runs it as uid 65532. Pin the base images by digest in CI
# (`FROM image:tag@sha256:…`) to make rebuilds reproducible.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---- build ---------------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src

# Dependencies first, in their own layer: with placeholder sources this compiles every crate of
# Cargo.lock, and the layer is reused until Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src target/release/iskra-ws-sidecar* target/release/deps/iskra_ws_sidecar* \
           target/release/deps/libiskra_ws_sidecar* target/release/.fingerprint/iskra-ws-sidecar-*

# Then the crate itself.
COPY src ./src
RUN cargo build --release --locked \
 && install -D -m 0755 target/release/iskra-ws-sidecar /out/usr/local/bin/iskra-ws-sidecar \
 && install -d -m 0750 /out/var/spool/iskra-ws-sidecar

# ---- runtime -------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime

LABEL org.opencontainers.image.title="iskra-ws-sidecar" \
      org.opencontainers.image.description="OpenTelemetry-native WebSocket sidecar for the Iskra dashboards" \
      org.opencontainers.image.source="https://github.com/iskra/iskra-ws-sidecar" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=builder /out/usr/local/bin/iskra-ws-sidecar /usr/local/bin/iskra-ws-sidecar
# The telemetry spool (config telemetry.spool_dir), owned by the runtime user; a named volume mounted
# here starts with this ownership. With a read-only root filesystem it must be a volume or tmpfs.
COPY --from=builder --chown=65532:65532 /out/var/spool/iskra-ws-sidecar /var/spool/iskra-ws-sidecar

USER 65532:65532

# 8000: the proxy (clients), 8080: admin (/health, /ready, /metrics)
EXPOSE 8000 8080

ENTRYPOINT ["/usr/local/bin/iskra-ws-sidecar"]
CMD ["run"]
