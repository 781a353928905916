# Reverb Pusher: a multi-stage build. The build stage runs the same commands as CI
# (.ci/run and scripts/test.sh): the wasm32 target for the embedded admin panel, the PostgreSQL
# and MariaDB client libraries, mdBook for the embedded documentation, then a release build with
# every database backend. The runtime image holds the binary and the client libraries only, and
# runs as an unprivileged user.
#
#   docker build -t reverb-pusher .
#   docker run -p 6001:6001 -v reverb-pusher-data:/var/lib/reverb-pusher reverb-pusher

# The toolchain CI uses.
FROM rust:1.95-slim-bookworm AS build
# Versions come from the base image's Debian release, which pins them already.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libpq-dev libmariadb-dev \
    && rm -rf /var/lib/apt/lists/*
RUN rustup target add wasm32-unknown-unknown \
    && cargo install mdbook --version 0.4.52 --locked
WORKDIR /src
COPY . .
ENV REVERB_PUSHER_REQUIRE_DOCS=1
RUN cargo build --release -p reverb-pusher --features all-databases \
    && install -m 0755 target/release/reverb-pusher /usr/local/bin/reverb-pusher

FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 libmariadb3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/reverb-pusher \
        --create-home --shell /usr/sbin/nologin reverb-pusher
COPY --from=build /usr/local/bin/reverb-pusher /usr/local/bin/reverb-pusher
# Numeric, so that orchestrators can check that it is not root (runAsNonRoot).
USER 10001:10001
WORKDIR /var/lib/reverb-pusher
# The database and the master key live in /var/lib/reverb-pusher/data: keep it on a volume.
VOLUME ["/var/lib/reverb-pusher"]
ENV REVERB_PUSHER_HOST=0.0.0.0 \
    REVERB_PUSHER_PORT=6001 \
    REVERB_PUSHER_LOG_FORMAT=json
EXPOSE 6001
# SIGTERM drains connections (4200 spread over drain_window_secs) and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/reverb-pusher"]
CMD ["serve"]
