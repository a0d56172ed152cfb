#!/usr/bin/env bash
# The demo: builds everything, starts the QEMU lab and the Lease Manager in a network
# namespace, adds a server, wakes it over Wake-on-LAN, and shows it PXE-boot the agent
# (phases live), its hardware facts and boot timeline. Cleans up at the end. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/lab-prepare.sh
exec target/debug/lab demo --artifacts target/lab "$@"
