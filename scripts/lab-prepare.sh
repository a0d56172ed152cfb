#!/usr/bin/env bash
# Builds everything the QEMU lab boots: the static agent, the Lease Manager and tools, the
# pinned Debian kernel, a lab CA, the deterministic initramfs, and the tenant test OS image
# (target/lab/boot/tenant-initrd.cpio.gz, booted with the same vmlinuz). Output in target/lab/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
lab=target/lab
mkdir -p "$lab"

say "building the ramdisk agent (static, x86_64-unknown-linux-musl, profile agent)"
# Paths of the checkout and of the cargo registry are remapped so the binary (and with it the
# initramfs) does not depend on where the sources sit.
CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="--remap-path-prefix=$PWD=/src --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo" \
  cargo build --profile agent --target x86_64-unknown-linux-musl -p ramdisk-agent
agent=target/x86_64-unknown-linux-musl/agent/ramdisk-agent

say "building tenant-init, the tenant test OS's /init (static, x86_64-unknown-linux-musl, profile agent)"
CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="--remap-path-prefix=$PWD=/src --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo" \
  cargo build --profile agent --target x86_64-unknown-linux-musl -p tenant-init
tenant_init=target/x86_64-unknown-linux-musl/agent/tenant-init

say "building lease-manager, the organizer, the agent (host build, for namespace tests), initramfs-build and the lab tools"
cargo build -p lease-manager -p procurement-organizer -p ramdisk-agent -p fleet-sim -p initramfs -p lab --bins

say "fetching the pinned Debian kernel (cached in $lab/kernel)"
target/debug/initramfs-build kernel-fetch --cache "$lab/kernel"

if [[ ! -f $lab/ca/ca.pem ]]; then
  say "creating the lab's Lease Manager CA in $lab/ca (public cert goes into the initramfs)"
fi
target/debug/lease-manager ca init --dir "$lab/ca"

say "building the initramfs (deterministic; sha256 below)"
target/debug/initramfs-build build --agent "$agent" --ca "$lab/ca/ca.pem" \
  --kernel-cache "$lab/kernel" --out "$lab/boot"

say "building the tenant test OS image $lab/boot/tenant-initrd.cpio.gz (deterministic; sha256 below)"
target/debug/initramfs-build tenant-os --init "$tenant_init" --out "$lab/boot"
