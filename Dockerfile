# syntax=docker/dockerfile:1
# rolecall: the CLI, the controller and the reference portal in one small image.
#
#   docker build -t rolecall .
#   docker run --rm rolecall --help

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so that a change to rolecall's own code reuses the cached layer.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > benches/fleet.rs \
    && cargo fetch --locked
COPY . .
RUN cargo build --release --locked --bin rolecall \
    && strip target/release/rolecall

# glibc and libgcc only (rusqlite's SQLite is linked in); runs as the unprivileged "nonroot"
# user (65532) with nothing else in the image: no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/rolecall /usr/local/bin/rolecall
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/rolecall"]
CMD ["controller"]
