#!/usr/bin/env bash
# Installs what the lab, the tests and the demo need on a fresh Debian 12 machine (run as root).
# Idempotent: installs only what is missing, and says what it does.
set -euo pipefail
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

packages=(
  qemu-system-x86 ipxe-qemu ovmf   # the QEMU lab: TCG VMs, iPXE NIC ROMs, UEFI firmware
  ipxe                              # undionly.kpxe / ipxe.efi / snponly.efi served over TFTP
  musl-tools                        # static musl build of the ramdisk agent (ring's C code)
  kmod                              # depmod for the Debian kernel's modules
  iproute2 curl                     # network namespaces; a TFTP/HTTP client for tests
)
missing=()
for p in "${packages[@]}"; do
  [[ $p == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages (no recommends): ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  say "Debian packages present"
fi

if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  say "adding the Rust target x86_64-unknown-linux-musl (static agent)"
  rustup target add x86_64-unknown-linux-musl
fi
