//! Fuzz target: arbitrary bytes into the ramdisk agent's frame parser and DHCP client machine.
//!
//! The input is used three ways: as a raw Ethernet frame, as the DHCP payload of a well-formed
//! server-to-client frame (so the fuzzer reaches the DHCP decoder and the state checks without
//! having to find checksums), and split into several such payloads fed in sequence, so a
//! matching OFFER can move the machine to REQUESTING and a later ACK/NAK be judged there. The
//! machine's xid is fixed (0x00c0ffee) so the fuzzer can learn it from comparisons.
#![no_main]

use std::net::Ipv4Addr;
use std::time::Duration;

use agent_core::dhcp_client::{DhcpClient, Handled};
use agent_core::dhcp_wire;
use agent_core::frame::{self, BROADCAST_MAC, UdpChecksum, UdpFrame};
use libfuzzer_sys::fuzz_target;
use lm_api::MacAddr;

const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
const XID: u64 = 0x00c0_ffee;

fn server_frame(payload: &[u8]) -> Option<Vec<u8>> {
    let payload = payload.get(..payload.len().min(frame::MAX_PAYLOAD))?;
    frame::build_udp(
        &UdpFrame {
            dst_mac: BROADCAST_MAC,
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            src_ip: Ipv4Addr::new(10, 77, 0, 1),
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: 67,
            dst_port: 68,
            payload,
        },
        0,
    )
    .ok()
}

fn selecting() -> DhcpClient {
    let mut c = DhcpClient::new(MAC, Duration::ZERO);
    let first = c
        .poll(Duration::ZERO, (1000 << 32) | XID)
        .expect("DISCOVER builds");
    assert!(first.is_some());
    c
}

fuzz_target!(|data: &[u8]| {
    let _ = frame::parse_udp(data);
    let _ = frame::parse_udp_with(data, UdpChecksum::NotReady);
    let _ = dhcp_wire::prescan(data);

    let mut c = selecting();
    let _ = c
        .handle_frame(data, Duration::from_secs(1), 7)
        .expect("own messages build");
    let mut c = selecting();
    let _ = c.handle_received(data, UdpChecksum::NotReady, Duration::from_secs(1), 7);

    // A sequence of payloads separated by 0xfd bytes, each framed correctly.
    let mut c = selecting();
    let mut now = Duration::from_secs(1);
    for part in data.split(|&b| b == 0xfd).take(8) {
        let Some(f) = server_frame(part) else {
            continue;
        };
        match c.handle_frame(&f, now, 9).expect("own messages build") {
            Handled::Bound(lease) => {
                assert!(lease.t1 <= lease.t2 && lease.t2 <= lease.lease_secs);
                assert!(lease.prefix_len() <= 30);
            }
            Handled::Send(req) => assert!(frame::parse_udp(&req).is_ok()),
            Handled::Ignored(why) => {
                let _ = why.to_string();
            }
            Handled::Restarted => {}
        }
        now += Duration::from_secs(1);
        let _ = c.poll(now, 11).expect("own messages build");
    }
});
