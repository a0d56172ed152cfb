#!/usr/bin/env bash
# Benchmarks (separate from the tests): the Lease Manager's DHCP and TFTP servers against
# reference servers in the same run, in network namespaces this script's tools create and
# delete. Installs the reference tools first. Run as root. Results: docs/benchmarks.md.
#   scripts/bench.sh [all|dhcp|tftp|fleet|image|tunnel|lease]
# `lease` (the whole lease in the QEMU lab, request -> tenant OS, against the floor of the same
# lab) builds the lab artifacts (scripts/lab-prepare.sh) and runs 3 rounds; `all` runs it last.
# `tunnel` (WireGuard: wg-tunnel vs boringtun-cli with iperf3, in namespaces) installs iperf3,
# wireguard-tools and boringtun-cli (under target/bench-tools); `all` runs it after `image`.
# `image` (sealed image seal/open vs openssl speed, reader memory) needs no root or namespaces,
# but a release build of lab; `all` runs it after the others.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
run_image() {
  ensure_packages openssl
  say "building lab (release: the sealed image pipeline is measured as optimised code)"
  cargo build --release -p lab --bin lab
  say "running the image benchmark (1 GiB generated on the fly per run, both AEADs; a few minutes)"
  target/release/lab bench image
}
run_tunnel() {
  ensure_packages iperf3 wireguard-tools iproute2
  if [[ ! -x target/bench-tools/bin/boringtun-cli ]]; then
    say "installing boringtun-cli (the reference WireGuard peer) under target/bench-tools"
    cargo install boringtun-cli --locked --root target/bench-tools
  fi
  say "building wg-node (release, the wg-tunnel example) and lab"
  cargo build --release -p wg-tunnel --example wg-node
  cargo build -p lab --bin lab
  say "running the tunnel benchmark (iperf3 through wg-tunnel and boringtun-cli, 3 rounds of 10 s)"
  target/debug/lab bench tunnel
}
run_lease() {
  say "building the lab artifacts and the debug binaries the lab runs (scripts/lab-prepare.sh)"
  scripts/lab-prepare.sh
  say "running the whole-lease benchmark (QEMU, 3 rounds of a lease, a PXE boot and a direct kernel boot; about 2 minutes)"
  target/debug/lab bench lease --artifacts target/lab
}
if [[ "${1:-all}" == lease ]]; then
  run_lease
  exit 0
fi
if [[ "${1:-all}" == tunnel ]]; then
  run_tunnel
  exit 0
fi
if [[ "${1:-all}" == image ]]; then
  run_image
  exit 0
fi
scripts/setup.sh
# perfdhcp is in kea-admin; atftp is the windowsize-capable client (atftpd is unpacked by lab bench)
ensure_packages kea-admin kea-dhcp4-server dnsmasq-base tftpd-hpa atftp curl
say "building lease-manager and fleet-sim (release) and the lab tools"
cargo build --release -p lease-manager -p fleet-sim
cargo build -p lab --bin lab
case "${1:-all}" in
  all|fleet) scripts/lab-prepare.sh ;;  # the fleet benchmark runs the LM in the lab (kernel, initrd, CA)
esac
say "running the benchmarks (perfdhcp, curl and atftp against each server, fleet-sim against the LM; takes a few minutes)"
target/debug/lab bench "${1:-all}" --lease-manager target/release/lease-manager
if [[ "${1:-all}" == all ]]; then run_image; run_tunnel; run_lease; fi
