#!/usr/bin/env bash
# Benchmarks (separate from the tests): the Lease Manager's DHCP and TFTP servers against
# reference servers in the same run, in network namespaces this script's tools create and
# delete. Installs the reference tools first. Run as root. Results: docs/benchmarks.md.
#   scripts/bench.sh [all|dhcp|tftp]
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
scripts/setup.sh
tools=(kea-admin kea-dhcp4-server dnsmasq-base tftpd-hpa atftp curl)
missing=()
for p in "${tools[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing reference tools (no recommends): ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
say "building lease-manager (release) and the lab tools"
cargo build --release -p lease-manager
cargo build -p lab --bin lab
say "running the benchmarks (perfdhcp, curl and atftp against each server; takes a few minutes)"
target/debug/lab bench "${1:-all}" --lease-manager target/release/lease-manager
