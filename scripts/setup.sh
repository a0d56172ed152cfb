#!/usr/bin/env bash
# Installs what the lab, the tests and the demo need on a fresh Debian 12 machine (run as root).
# Idempotent: installs only what is missing, and says what it does.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# qemu-system-x86 ipxe-qemu ovmf: the QEMU lab (TCG VMs, iPXE NIC ROMs, UEFI firmware)
# ipxe: undionly.kpxe / ipxe.efi / snponly.efi served over TFTP
# musl-tools: static musl build of the ramdisk agent (ring's C code)
# kmod: depmod for the Debian kernel's modules; iproute2: namespaces; curl: TFTP client in tests
ensure_packages qemu-system-x86 ipxe-qemu ovmf ipxe musl-tools kmod iproute2 curl swtpm swtpm-tools strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins
say "Debian packages present"

if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  say "adding the Rust target x86_64-unknown-linux-musl (static agent)"
  rustup target add x86_64-unknown-linux-musl
fi
