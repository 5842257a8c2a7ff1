#!/usr/bin/env bash
# Lays out the image's whole file system for the top-level Containerfile (FROM scratch):
#   the binary, the shared libraries it links (from this Debian host, the same release the CI
#   machines run), CA certificates, a non-root user, name resolution through /etc/hosts and
#   DNS (glibc 2.36 has its files and dns NSS modules built in), and fixtures/ for the
#   embedded default. Nothing is downloaded.
# Usage: deploy/container/stage.sh BINARY DIR   (then: podman build -f Containerfile DIR)
set -euo pipefail
binary=${1:?binary}
dir=${2:?directory}
cd "$(dirname "$0")/../.."
rm -rf "$dir/rootfs"
root="$dir/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/app" "$root/tmp"
install -m 0755 "$binary" "$root/usr/local/bin/avs-api"
strip "$root/usr/local/bin/avs-api" 2>/dev/null || true
# Every library the binary links, and the dynamic loader, at the paths it looks for them.
ldd "$binary" | awk '$3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0::/:/sbin/nologin\navs:x:10001:10001::/app:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\navs:x:10001:\n' > "$root/etc/group"
printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
cp -r fixtures "$root/app/"
chmod 1777 "$root/tmp"
du -sh "$root" | awk '{ print "staged " $1 }'
