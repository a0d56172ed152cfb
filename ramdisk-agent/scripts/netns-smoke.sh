#!/bin/bash
# Smoke test of the agent's IO shell on real sockets, without QEMU: the agent runs as a normal
# process (--not-init) in a network namespace "agc" joined by a veth pair to "ags", where
# dnsmasq answers DHCP and a small Python HTTPS server plays the Lease Manager (its certificate
# signed by a throw-away CA that the agent pins with --ca). Checks the console markers up to
# AGENT-READY and one heartbeat, then removes everything it created.
#
# usage: ramdisk-agent/scripts/netns-smoke.sh [AGENT_BINARY]   (root; needs ip, dnsmasq, openssl, python3)
set -euo pipefail
agent=$(readlink -f "${1:-target/debug/ramdisk-agent}")
mac=52:54:00:aa:00:01
work=$(mktemp -d)
cleanup() {
  [ -n "${lm_pid:-}" ] && kill "$lm_pid" 2>/dev/null || true
  [ -n "${dns_pid:-}" ] && kill "$dns_pid" 2>/dev/null || true
  ip netns del agc 2>/dev/null || true
  ip netns del ags 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add ags
ip netns add agc
ip link add agv0 address "$mac" netns agc type veth peer name agv1 netns ags
ip -n ags addr add 10.99.7.1/24 dev agv1
ip -n ags link set lo up
ip -n ags link set agv1 up

# A CA and an LM certificate for 10.99.7.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=smoke-ca \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=lm \
  -keyout "$work/lm.key" -out "$work/lm.csr" 2>/dev/null
printf 'subjectAltName=IP:10.99.7.1\n' > "$work/ext"
openssl x509 -req -in "$work/lm.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile "$work/ext" -out "$work/lm.pem" 2>/dev/null

cat > "$work/lm.py" <<'PY'
import http.server, json, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        print(self.path, body.decode(), file=sys.stderr, flush=True)
        if self.path == "/v1/agent/hello":
            out = json.dumps({"server": "vm-smoke", "heartbeat_secs": 1}).encode()
            self.send_response(200)
        elif self.path == "/v1/agent/heartbeat":
            out = json.dumps({"action": "continue", "lease_ends_ms": None}).encode()
            self.send_response(200)
        else:
            out = b""
            self.send_response(204)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("10.99.7.1", 8443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
ip netns exec ags python3 "$work/lm.py" "$work/lm.pem" "$work/lm.key" 2> "$work/lm.log" &
lm_pid=$!
ip netns exec ags dnsmasq --no-daemon --port=0 --interface=agv1 --bind-interfaces \
  --dhcp-range=10.99.7.50,10.99.7.60,255.255.255.0,120 --dhcp-option=3,10.99.7.1 \
  --dhcp-option=6,10.99.7.1 --dhcp-leasefile="$work/leases" --pid-file="$work/dnsmasq.pid" \
  --no-ping --log-dhcp --log-facility="$work/dnsmasq.log" &
dns_pid=$!
sleep 1

cmdline="console=ttyS0 lm.url=https://10.99.7.1:8443 lm.boot=00000000000000ff lm.mac=$mac lm.poweroff=60 ${AGENT_LOG:+lm.log=$AGENT_LOG}"
timeout 20 ip netns exec agc "$agent" --not-init --cmdline "$cmdline" --ca "$work/ca.pem" \
  > "$work/console" 2>&1 || true
cat "$work/console"
echo "--- LM saw:"; cat "$work/lm.log"
echo "--- dnsmasq:"; grep -E "DHCP(DISCOVER|OFFER|REQUEST|ACK)|vendor class" "$work/dnsmasq.log" || true
fail=0
for want in "AGENT-PHASE link ok iface=agv0" "AGENT-PHASE dhcp ok iface=agv0 address=10.99.7." \
            "AGENT-PHASE hello ok server=vm-smoke" "AGENT-READY server=vm-smoke address=10.99.7."; do
  grep -qF "$want" "$work/console" || { echo "MISSING: $want"; fail=1; }
done
grep -q '/v1/agent/heartbeat .*"uptime_ms"' "$work/lm.log" || { echo "MISSING: heartbeat"; fail=1; }
grep -q 'vendor class: lease-agent' "$work/dnsmasq.log" || { echo "MISSING: option 60 at dnsmasq"; fail=1; }
[ $fail = 0 ] && echo "SMOKE OK"
exit $fail
