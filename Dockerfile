# syntax=docker/dockerfile:1
# Tasklight: multi-stage build. Dependencies are compiled in their own layer (from Cargo.toml and
# Cargo.lock only), so a change to the sources rebuilds only the crate itself.

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src

# 1. Dependencies: a stub crate with the real manifest and lock file.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src migrations/postgres migrations/sqlite \
    && echo 'fn main() {}' > src/main.rs \
    && echo '' > src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# 2. The service itself (migrations are embedded at compile time).
COPY migrations migrations
COPY src src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && strip target/release/tasklight

# Runtime: Debian slim, no compiler, no shell tools beyond the base; runs as an unprivileged user.
FROM debian:bookworm-slim AS runtime
RUN groupadd --system --gid 10001 tasklight \
    && useradd --system --uid 10001 --gid tasklight --home-dir /var/lib/tasklight \
        --create-home --shell /usr/sbin/nologin tasklight
COPY --from=build /src/target/release/tasklight /usr/local/bin/tasklight
USER tasklight:tasklight
WORKDIR /var/lib/tasklight
ENV TASKLIGHT_LISTEN=0.0.0.0:8080 \
    TASKLIGHT_ADMIN_LISTEN=0.0.0.0:9090 \
    LOG_FORMAT=json \
    RUST_LOG=info
EXPOSE 8080 9090
# The binary checks its own /health/live on the admin listener (no curl needed in the image).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/tasklight", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tasklight"]
CMD ["serve"]
