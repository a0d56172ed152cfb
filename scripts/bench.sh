#!/usr/bin/env bash
# Benchmarks (separate from the tests): the Lease Manager's DHCP and TFTP servers against
# reference servers in the same run, in network namespaces this script's tools create and
# delete. Installs the reference tools first. Run as root. Results: docs/benchmarks.md.
#   scripts/bench.sh [all|dhcp|tftp|fleet|image|tunnel|ipsec|lease]
# `lease` (the whole lease in the QEMU lab, request -> tenant OS, against the floor of the same
# lab) builds the lab artifacts (scripts/lab-prepare.sh) and runs 3 rounds; `all` runs it last.
# `tunnel` (WireGuard: wg-tunnel vs boringtun-cli with iperf3, in namespaces) installs iperf3,
# wireguard-tools and boringtun-cli (under target/bench-tools); `all` runs it after `image`.
# `ipsec` (issue 6: the agent's IPsec stack against strongSwan, next to strongSwan against
# strongSwan and the WireGuard path, in one run) needs what `tunnel` needs plus charon/swanctl
# (scripts/setup.sh installs them) and builds ipsec-node (release); not part of `all`.
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
  install_tunnel_tools
  say "building wg-node (release, the wg-tunnel example) and lab"
  cargo build --release -p wg-tunnel --example wg-node
  cargo build -p lab --bin lab
  say "running the tunnel benchmark (iperf3 through wg-tunnel and boringtun-cli, 3 rounds of 10 s)"
  target/debug/lab bench tunnel
}
install_tunnel_tools() {
  ensure_packages iperf3 wireguard-tools iproute2
  if [[ ! -x target/bench-tools/bin/boringtun-cli ]]; then
    say "installing boringtun-cli (the reference WireGuard peer) under target/bench-tools"
    cargo install boringtun-cli --locked --root target/bench-tools
  fi
}
run_ipsec() {
  install_tunnel_tools
  ensure_packages strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins
  say "building ipsec-node and wg-node (release examples) and lab"
  cargo build --release -p agent-ipsec --example ipsec-node
  cargo build --release -p wg-tunnel --example wg-node
  cargo build -p lab --bin lab
  say "running the IPsec benchmark (agent vs strongSwan vs WireGuard, iperf3 3 rounds of 10 s each way, 10 handshakes each; about 4 minutes)"
  target/debug/lab bench ipsec
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
if [[ "${1:-all}" == ipsec ]]; then
  run_ipsec
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
