# Ferry's production image: the lean binary (`--no-default-features`: no simulator, bench
# or test harness) on distroless (glibc, CA certificates, no shell), as a non-root user with
# nothing to write (the chart mounts the root filesystem read-only).
#
#   docker build -t ferry:0.1.0 .            (or: buildah bud -t ferry:0.1.0 .)
#
# Without registry access, scripts/build-image.sh assembles the same runtime layer from
# this machine's Debian 12 (the distroless base's distribution) with umoci, and proves the
# binary starts from the image's root filesystem.

FROM docker.io/library/rust:1.94-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p ferry --no-default-features \
 && objcopy --strip-debug target/release/ferry /ferry

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /ferry /usr/local/bin/ferry
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ferry"]
CMD ["--help"]
