//! Golden tests of the server views ([`super::render`]): every server state, the lease
//! column, and hostile strings from an agent (facts, reports) kept on their lines.

use lm_api::{
    AgentPhase, BootId, Cpu, Disk, EventKind, HardwareFacts, LeaseId, MacAddr, Nic, ServerState,
    ServerView, Smbios, TimelineEntry,
};

use super::render::{server_list, server_show, table, timeline_line};

const T0: u64 = 1_700_000_000_000;

fn server(name: &str, i: u8, state: ServerState, lease: Option<u64>) -> ServerView {
    ServerView {
        name: name.into(),
        mac: MacAddr([0x52, 0x54, 0, 0, 0, i]),
        reserved_ip: None,
        state,
        lease: lease.map(LeaseId::from_random),
        since_ms: T0,
        facts: None,
        timeline: vec![],
    }
}

#[test]
fn server_list_shows_lease_states_and_the_lease() {
    let b = BootId::from_random(0x1f);
    let states = [
        ServerState::Idle,
        ServerState::Reserved,
        ServerState::Enrolling { boot_id: b },
        ServerState::Tunneling { boot_id: b },
        ServerState::Transferring { boot_id: b },
        ServerState::Running { boot_id: b },
        ServerState::Releasing { boot_id: None },
        ServerState::Wiping { boot_id: b },
        ServerState::Quarantined {
            reason: "wipe not confirmed".into(),
        },
    ];
    let servers: Vec<ServerView> = states
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let leased = !matches!(s, ServerState::Idle | ServerState::Quarantined { .. });
            server(&format!("vm{i}"), i as u8, s, leased.then_some(0xabc))
        })
        .collect();
    assert_eq!(
        server_list(&servers),
        "\
NAME  MAC                STATE         LEASE               SINCE                 RESERVED  HARDWARE
vm0   52:54:00:00:00:00  idle          -                   2023-11-14T22:13:20Z  -         -
vm1   52:54:00:00:00:01  reserved      l-0000000000000abc  2023-11-14T22:13:20Z  -         -
vm2   52:54:00:00:00:02  enrolling     l-0000000000000abc  2023-11-14T22:13:20Z  -         -
vm3   52:54:00:00:00:03  tunneling     l-0000000000000abc  2023-11-14T22:13:20Z  -         -
vm4   52:54:00:00:00:04  transferring  l-0000000000000abc  2023-11-14T22:13:20Z  -         -
vm5   52:54:00:00:00:05  running       l-0000000000000abc  2023-11-14T22:13:20Z  -         -
vm6   52:54:00:00:00:06  releasing     l-0000000000000abc  2023-11-14T22:13:20Z  -         -
vm7   52:54:00:00:00:07  wiping        l-0000000000000abc  2023-11-14T22:13:20Z  -         -
vm8   52:54:00:00:00:08  quarantined   -                   2023-11-14T22:13:20Z  -         -
"
    );
}

#[test]
fn server_show_escapes_what_the_agent_reported() {
    let b = BootId::from_random(0x1f);
    let mut s = server(
        "vm1",
        1,
        ServerState::Failed {
            boot_id: b,
            reason: "disk\nerror\x1b[2J".into(),
        },
        Some(0xabc),
    );
    s.facts = Some(HardwareFacts {
        nics: vec![Nic {
            name: "eth0".into(),
            mac: MacAddr([0x52, 0x54, 0, 0, 0, 1]),
            driver: Some("virtio_net".into()),
            speed_mbps: Some(1000),
        }],
        smbios: Smbios {
            uuid: None,
            serial: Some("S\x1b]0;pwned\x07N".into()),
            vendor: Some("QEMU".into()),
            product: None,
        },
        cpu: Cpu {
            model: "Virtual\r\nCPU".into(),
            logical: 2,
        },
        memory_bytes: 2 << 30,
        disks: vec![Disk {
            name: "vda".into(),
            size_bytes: 10 << 30,
            model: Some("\u{202e}evil".into()),
            serial: None,
        }],
        tpm_version: Some(2),
    });
    s.timeline = vec![
        TimelineEntry {
            at_ms: T0,
            boot_id: Some(b),
            kind: EventKind::WakeConfirmed { after_ms: 900 },
        },
        TimelineEntry {
            at_ms: T0 + 12_345,
            boot_id: Some(b),
            kind: EventKind::AgentReport {
                phase: AgentPhase::Enroll,
                ok: false,
                detail: "token refused\nAGENT-PHASE ready ok".into(),
                attempt: 2,
            },
        },
    ];
    assert_eq!(
        server_show(&s),
        "\
Server    vm1 (52:54:00:00:00:01)
State     failed (boot 000000000000001f): disk\\nerror\\x1b[2J since 2023-11-14T22:13:20Z
Lease     l-0000000000000abc
Reserved  - (dynamic pool)
Facts
  SMBIOS  uuid -  serial S\\x1b]0;pwned\\x07N
          QEMU / -
  CPU     2 x Virtual\\r\\nCPU
  Memory  2.0 GiB
  Root    TPM 2.0
  NIC     eth0 52:54:00:00:00:01 virtio_net 1000 Mbit/s
  Disk    vda 10.0 GiB \\u{202e}evil
Boot timeline (boot 000000000000001f)
  TIME      EVENT           DETAIL
  +0.000s   wake-confirmed  DHCPDISCOVER 900 ms after the first wake
  +12.345s  agent-report    enroll FAILED (attempt 2) token refused\\nAGENT-PHASE ready ok
"
    );
    assert_eq!(
        timeline_line(&s.timeline[1], T0),
        "  + 12.345s  agent-report    enroll FAILED (attempt 2) token refused\\nAGENT-PHASE ready ok"
    );
}

#[test]
fn tables_keep_hostile_cells_on_their_line() {
    let t = table(
        &["A", "B"],
        &[
            vec!["x\ny".into(), "1".into()],
            vec!["\x1b[31m".into(), "2".into()],
        ],
    );
    assert_eq!(t, "A         B\nx\\ny      1\n\\x1b[31m  2\n");
}

#[test]
fn lease_pipeline_phases_in_show_and_watch() {
    let b = BootId::from_random(0x2a);
    let mut s = server("vm2", 2, ServerState::Running { boot_id: b }, Some(0xabc));
    let report = |at_ms, phase, detail: &str| TimelineEntry {
        at_ms,
        boot_id: Some(b),
        kind: EventKind::AgentReport {
            phase,
            ok: true,
            detail: detail.into(),
            attempt: 1,
        },
    };
    s.timeline = vec![
        report(T0, AgentPhase::Tunnel, "skipped=no gateway in the lease"),
        report(
            T0 + 2_500,
            AgentPhase::Transfer,
            "image=img-1 chunks=4 bytes=4194304 resumes=1 seconds=2.345",
        ),
    ];
    assert_eq!(
        server_show(&s),
        "\
Server    vm2 (52:54:00:00:00:02)
State     running (boot 000000000000002a) since 2023-11-14T22:13:20Z
Lease     l-0000000000000abc
Reserved  - (dynamic pool)
Facts     none yet (the agent reports them in its hello)
Boot timeline (boot 000000000000002a)
  TIME     EVENT         DETAIL
  +0.000s  agent-report  tunnel ok (attempt 1) skipped=no gateway in the lease
  +2.500s  agent-report  transfer ok (attempt 1) image=img-1 chunks=4 bytes=4194304 resumes=1 seconds=2.345
"
    );
    assert_eq!(
        timeline_line(&s.timeline[1], T0),
        "  +  2.500s  agent-report    transfer ok (attempt 1) image=img-1 chunks=4 bytes=4194304 resumes=1 seconds=2.345"
    );
    s.state = ServerState::Transferring { boot_id: b };
    assert!(
        server_show(&s).contains("\nState     transferring (boot 000000000000002a) since "),
        "{}",
        server_show(&s)
    );
}
