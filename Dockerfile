# quarry in a container: a build stage from the Rust image, a small Debian runtime stage.
# Not built in quarry's own CI (no Docker there); see docs/install.md for the commands.
#
#   docker build -t quarry .
#   docker run -d --name quarry -p 7878:7878 \
#     -v quarry-data:/data -v quarry-models:/models quarry
#
# The server listens on 0.0.0.0 inside the container, so it refuses to start without
# authentication: put a quarry.toml with [[auth.api_keys]] in the data volume (docs/install.md),
# or append `serve --addr 0.0.0.0:7878 --insecure-no-auth` for a trial on your own machine.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# The toolchain rust-toolchain.toml pins, with the components it lists, installed explicitly
# (a no-op when the image has it already), so the build does not rely on rustup's auto-install.
COPY rust-toolchain.toml ./
RUN rustup toolchain install "$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)" \
      --profile minimal --component rustfmt --component clippy
COPY . .
RUN cargo build --release --locked --bin quarry \
 && cp target/release/quarry /usr/local/bin/quarry

FROM debian:bookworm-slim
# ca-certificates: the model download (PyPI) and OpenAI-compatible endpoints over TLS;
# curl: the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/quarry quarry \
 && mkdir -p /data /models \
 && chown quarry:quarry /data /models
COPY --from=build /usr/local/bin/quarry /usr/local/bin/quarry
USER quarry
WORKDIR /home/quarry
# The data directory (catalog, indexes, quarry.toml) and the model cache, each a volume.
ENV QUARRY_DATA_DIR=/data \
    QUARRY_MODEL_DIR=/models
VOLUME ["/data", "/models"]
EXPOSE 7878
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD curl -fsS http://127.0.0.1:7878/readyz || exit 1
ENTRYPOINT ["quarry"]
CMD ["serve", "--addr", "0.0.0.0:7878"]
