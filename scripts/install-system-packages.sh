#!/usr/bin/env bash
# Installs the Debian packages shoal needs when they are missing (bubblewrap for sandboxed pods;
# qemu and busybox-static for the cgroup v2 VM test in tests/vm/, whose kernel
# scripts/fetch-test-kernel.sh brings).
# Called by `make install`; a no-op when everything is present or when not root without sudo.
set -euo pipefail
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)  # load generator of bench/bench_proxy.py
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)  # the VM's initramfs
# fetch-test-kernel.sh decompresses the kernel modules of Debian releases that ship them packed.
command -v xz >/dev/null 2>&1 || missing+=(xz-utils)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
  echo "shoal: missing Debian packages ${missing[*]}; install them as root (sandboxed pods need them)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
