#!/usr/bin/env bash
# Benchmarks (separate from the tests): the Lease Manager's DHCP and TFTP servers against
# reference servers in the same run, in network namespaces this script's tools create and
# delete. Installs the reference tools first. Run as root. Results: docs/benchmarks.md.
#   scripts/bench.sh [all|dhcp|tftp|fleet]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
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
