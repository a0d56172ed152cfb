//! Wake-on-LAN tests (root, namespaces only): the AF_PACKET listener on a bridge sees magic
//! packets sent as UDP broadcasts and as EtherType 0x0842 frames, from another namespace over
//! a veth and from the bridge's own namespace (as the Lease Manager sends them); non-magic
//! traffic is ignored and a magic packet for an unregistered MAC powers nothing on.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use lab::netns::{self, Netns};
use lab::wol_listener::{self, WolListener};
use lab::{Lab, LabSpec, MacAddr, VmSpec, WakeOutcome, WakeVia};

const TARGET: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x77, 0x10, 0x01]);

#[test]
fn listener_sees_udp_and_ethertype_from_another_namespace() {
    let dc = Netns::create("lw").unwrap();
    let lm = Netns::create("lw").unwrap();
    let names = [dc.name().to_owned(), lm.name().to_owned()];
    dc.add_bridge("br0", None).unwrap();
    netns::veth(&dc, "port0", &lm, "lm0").unwrap();
    dc.set_master("port0", "br0").unwrap();

    let (tx, rx) = mpsc::channel();
    let listener = WolListener::start(&dc, "br0", move |mac, via| {
        let _ = tx.send((mac, via, Instant::now()));
    })
    .unwrap();

    // non-magic and almost-magic (15 repetitions) subnet broadcasts first: no callback
    lm.add_addr("lm0", "10.79.0.2".parse().unwrap(), 24)
        .unwrap();
    lm.run(|| -> std::io::Result<()> {
        let s = std::net::UdpSocket::bind("10.79.0.2:0")?;
        s.set_broadcast(true)?;
        let mut almost = vec![0xff; 6];
        for _ in 0..15 {
            almost.extend_from_slice(&TARGET.0);
        }
        s.send_to(&almost, "10.79.0.255:9")?;
        s.send_to(b"not a magic packet", "10.79.0.255:9")?;
        Ok(())
    })
    .unwrap()
    .unwrap();
    let other = MacAddr([0x52, 0x54, 0x00, 0x77, 0x10, 0x02]);
    let t = Instant::now();
    wol_listener::send_udp(&lm, "lm0", TARGET, 9).unwrap();
    let (mac, via, at) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((mac, via), (TARGET, WakeVia::Udp { port: 9 }));
    eprintln!("UDP magic packet seen after {:?}", at - t);
    let t = Instant::now();
    wol_listener::send_ethertype(&lm, "lm0", other).unwrap();
    let (mac, via, at) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((mac, via), (other, WakeVia::EtherType));
    eprintln!("0x0842 magic frame seen after {:?}", at - t);
    wol_listener::send_udp(&lm, "lm0", TARGET, 7).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap().1,
        WakeVia::Udp { port: 7 }
    );
    assert!(rx.try_recv().is_err(), "each packet is reported once");
    assert_eq!(listener.magic_packets_seen(), 3);

    drop(listener);
    drop((dc, lm));
    for n in &names {
        assert!(!netns::exists(n).unwrap(), "{n} left behind");
    }
}

#[test]
fn lab_ignores_unregistered_macs_and_sees_its_own_broadcasts() {
    let lab = Lab::start(LabSpec {
        prefix: "lu".into(),
        ..LabSpec::default()
    })
    .unwrap();
    let name = lab.netns().name().to_owned();
    let vm = lab.register_vm(VmSpec::new("vm0", TARGET)).unwrap();
    let stranger = MacAddr([0x52, 0x54, 0x00, 0x99, 0x99, 0x99]);
    // sent from the DC namespace itself out of br0, as the Lease Manager will
    wol_listener::send_udp(lab.netns(), "br0", stranger, 9).unwrap();
    wol_listener::send_ethertype(lab.netns(), "br0", stranger).unwrap();
    let wakes = lab.wait_wakes(2, Duration::from_secs(5)).unwrap();
    assert_eq!(wakes.len(), 2, "{wakes:?}");
    assert!(
        wakes
            .iter()
            .all(|w| w.mac == stranger && w.outcome == WakeOutcome::Unregistered)
    );
    let vias: Vec<WakeVia> = wakes.iter().map(|w| w.via).collect();
    assert_eq!(vias, [WakeVia::Udp { port: 9 }, WakeVia::EtherType]);
    assert_eq!(vm.boots(), 0);
    assert!(!vm.is_running());
    assert!(
        lab.register_vm(VmSpec::new("vm1", TARGET)).is_err(),
        "duplicate MAC"
    );
    assert!(
        lab.register_vm(VmSpec::new("vm0", stranger)).is_err(),
        "duplicate name"
    );
    drop(lab);
    assert!(!netns::exists(&name).unwrap(), "{name} left behind");
}
