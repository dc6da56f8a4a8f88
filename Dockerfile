# tickflow in a container: built from this repository, run as an unprivileged user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tickflow

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 tickflow && mkdir /data && chown tickflow /data
COPY --from=build /src/target/release/tickflow /usr/local/bin/tickflow
USER tickflow
WORKDIR /data
ENTRYPOINT ["tickflow"]
CMD ["run", "--sink", "sqlite:/data/tickflow.db"]
