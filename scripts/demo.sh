#!/usr/bin/env bash
# The demo: builds everything, starts the QEMU lab, the Lease Manager and the tenant's
# organizer and gateway in network namespaces; the tenant seals its boot image and asks for a
# server; the server wakes over Wake-on-LAN, PXE-boots the agent, enrolls, builds the
# WireGuard tunnel, pulls the sealed image, stores it under a host-bound start-up key, passes
# the start gate and kexecs into the tenant OS (phases live, with their times); then the
# tenant releases and the server is wiped. Cleans up at the end. Run as root.
# `scripts/demo.sh --wake-only` shows the maintenance boot alone; `scripts/demo.sh --ipsec` runs
# the lease over IPsec (the gateway runs strongSwan, the agent an IKEv2/ESP tunnel).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/lab-prepare.sh
exec target/debug/lab demo --artifacts target/lab "$@"
