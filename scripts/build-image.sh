#!/usr/bin/env bash
# Builds Ferry's container image on this machine without a registry: the production binary
# (release, `--no-default-features`, debug info stripped) and the shared libraries it links
# (ldd), the CA certificates and a non-root user, as one layer of an OCI image made with
# umoci — the runtime stage of the Dockerfile, which uses distroless/cc-debian12 where a
# registry is reachable. Then proves it: the image is at most 40 MB (compressed), its
# configuration runs `ferry` as a non-root user, and the binary starts from the image's own
# root filesystem (chroot, as that user) and answers.
#   scripts/build-image.sh [--out DIR]     (default target/image; prints the image's size)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/target/image"
[[ "${1:-}" == "--out" ]] && OUT="$2"
MAX_BYTES=$((40 * 1024 * 1024))
UID_=10001
command -v umoci >/dev/null || { echo "umoci is missing: scripts/setup.sh installs it" >&2; exit 1; }

cargo build --release --locked -p ferry --no-default-features --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/ferry"
VERSION="$("$BIN" --version | awk '{print $2}')"

rm -rf "$OUT" && mkdir -p "$OUT"
LAYOUT="$OUT/oci"
BUNDLE="$OUT/bundle"
umoci init --layout "$LAYOUT"
umoci new --image "$LAYOUT:$VERSION"
umoci unpack --image "$LAYOUT:$VERSION" "$BUNDLE"
RFS="$BUNDLE/rootfs"
install -d -m 0755 "$RFS/usr/local/bin" "$RFS/etc/ssl/certs" "$RFS/tmp"
objcopy --strip-debug "$BIN" "$RFS/usr/local/bin/ferry"
chmod 0755 "$RFS/usr/local/bin/ferry"
# The shared libraries the binary links, and the loader, at their own paths.
for lib in $(ldd "$BIN" | awk '/=>/ { print $3 } /ld-linux/ { print $1 }' | sort -u); do
  install -D -m 0644 "$(readlink -f "$lib")" "$RFS$lib"
done
chmod 0755 "$RFS"/lib64/ld-linux-* 2>/dev/null || true
cp /etc/ssl/certs/ca-certificates.crt "$RFS/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nferry:x:%s:%s:ferry:/nonexistent:/sbin/nologin\n' "$UID_" "$UID_" > "$RFS/etc/passwd"
printf 'root:x:0:\nferry:x:%s:\n' "$UID_" > "$RFS/etc/group"
umoci repack --image "$LAYOUT:$VERSION" "$BUNDLE"
umoci config --image "$LAYOUT:$VERSION" --config.user "$UID_:$UID_" \
  --config.entrypoint /usr/local/bin/ferry --config.cmd --help \
  --config.label "org.opencontainers.image.title=ferry" \
  --config.label "org.opencontainers.image.version=$VERSION"

# The proof: size, user, and the binary starting from the image's root filesystem.
bytes=$(find "$LAYOUT/blobs" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
(( bytes <= MAX_BYTES )) || { echo "the image is $bytes bytes, over $MAX_BYTES" >&2; exit 1; }
rm -rf "$BUNDLE" && umoci unpack --image "$LAYOUT:$VERSION" "$BUNDLE"
user="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["process"]["user"]["uid"])' "$BUNDLE/config.json")"
[[ "$user" == "$UID_" ]] || { echo "the image runs as uid $user, not $UID_" >&2; exit 1; }
# As root: chroot into the image, nothing of this machine's in reach. Otherwise: the
# image's own loader and libraries, by path.
in_image() {
  if [[ $(id -u) == 0 ]]; then
    chroot --userspec="$UID_:$UID_" "$BUNDLE/rootfs" /usr/local/bin/ferry "$@"
  else
    local rfs="$BUNDLE/rootfs"
    "$rfs"/lib64/ld-linux-x86-64.so.2 --library-path "$rfs/lib/x86_64-linux-gnu:$rfs/usr/lib/x86_64-linux-gnu" \
      "$rfs/usr/local/bin/ferry" "$@"
  fi
}
said="$(in_image --version)"
[[ "$said" == "ferry $VERSION" ]] || { echo "the image's binary said: $said" >&2; exit 1; }
in_image migrate --help >/dev/null
rm -rf "$BUNDLE"
echo "image ferry:$VERSION in $LAYOUT: $((bytes / 1024)) KiB compressed; its binary starts as uid $UID_"
