#!/usr/bin/env bash
# Fetches Debian's generic amd64 kernel into a cache outside git, for the cgroup v2 VM test
# (tests/vm/: a qemu guest whose only cgroup hierarchy is v2). Keeps vmlinuz, its config and
# the modules the guest's initramfs loads to mount the host's / over 9p (virtio, 9p, netfs).
# Called by `make install` (as root or via sudo, when the kernel is missing); a no-op when the
# cache already holds a kernel. SHOAL_VM_KERNEL_DIR overrides the cache (tests/vm/vm_image.py
# reads it).
set -euo pipefail
dest="${SHOAL_VM_KERNEL_DIR:-/var/cache/shoal-vm/kernel}"
[ -f "$dest/vmlinuz" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
download() {
  # The meta package names the current versioned image (e.g. linux-image-6.1.0-56-amd64).
  local image
  image=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
  [ -n "$image" ] || return 1
  # As root into a root-only mktemp dir: apt's _apt sandbox user could not write there.
  (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "$image")
}
# Empty or stale apt lists (a new machine, a kernel update on the mirror): update, try again.
if ! download; then
  apt-get update -qq
  download || { echo "shoal: cannot download linux-image-amd64 for the VM test" >&2; exit 1; }
fi
image_deb=$(ls "$work"/*.deb)
dpkg-deb -x "$image_deb" "$work/root"
# /lib/modules, or /usr/lib/modules in releases whose packages moved their files to /usr.
modules=""
for candidate in "$work"/root/lib/modules/* "$work"/root/usr/lib/modules/*; do
  [ -d "$candidate" ] && modules=$candidate
done
[ -n "$modules" ] || { echo "shoal: no lib/modules in $image_deb" >&2; exit 1; }
version=$(basename "$modules")
rm -rf "$dest.new"  # what a failed earlier run left
mkdir -p "$dest.new/modules"
cp "$work/root/boot/vmlinuz-$version" "$dest.new/vmlinuz"
cp "$work/root/boot/config-$version" "$dest.new/config"
for dir in drivers/virtio net/9p fs/9p fs/netfs fs/fscache; do
  if [ -d "$modules/kernel/$dir" ]; then
    mkdir -p "$dest.new/modules/$dir"
    cp -r "$modules/kernel/$dir/." "$dest.new/modules/$dir/"
  fi
done
# Newer Debian kernels ship modules compressed; busybox's insmod wants them plain.
find "$dest.new/modules" -name '*.ko.xz' -exec xz -d {} +
find "$dest.new/modules" -name '*.ko.zst' -exec zstd -q -d --rm {} +
# What is built in needs no module (the VM test skips those of its list).
cp "$modules/modules.builtin" "$dest.new/modules.builtin"
echo "$version" >"$dest.new/version"
rm -rf "$dest"
mv "$dest.new" "$dest"
echo "shoal: test kernel $version in $dest"
