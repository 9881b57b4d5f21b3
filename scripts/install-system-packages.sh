#!/usr/bin/env bash
# Installs the Debian packages shoal needs when they are missing (bubblewrap for sandboxed pods;
# qemu, busybox-static and a Debian kernel for the cgroup v2 VM test in tests/vm/).
# Called by `make install`; a no-op when everything is present or when not root without sudo.
set -euo pipefail
here=$(dirname "$0")
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)  # load generator of bench/bench_proxy.py
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)  # the VM's initramfs
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
  [ ${#missing[@]} -eq 0 ] && exit 0
  echo "shoal: missing Debian packages ${missing[*]}; install them as root (sandboxed pods need them)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
$SUDO bash "$here/fetch-test-kernel.sh"  # a no-op when the kernel is cached
