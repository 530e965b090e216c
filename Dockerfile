# Portico's image: build with the Rust toolchain, run as a non-root static-ish binary on a
# distroless base (no shell, no package manager).
#
#   docker build -t REGISTRY/portico:TAG .
#   docker push REGISTRY/portico:TAG

# ---- build ----
FROM rust:1.89-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches examples/support \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > examples/echo.rs \
 && echo 'fn main() {}' > benches/matcher.rs && echo 'fn main() {}' > benches/translate.rs \
 && cargo build --release --locked --bin portico \
 && rm -rf src examples benches
COPY src ./src
COPY examples ./examples
COPY benches ./benches
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin portico \
 && cp target/release/portico /portico

# ---- run ----
# glibc, CA certificates, /etc/passwd with uid 65532 "nonroot"; nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /portico /usr/local/bin/portico
USER 65532:65532
EXPOSE 8080 8443 10254
ENTRYPOINT ["/usr/local/bin/portico"]
