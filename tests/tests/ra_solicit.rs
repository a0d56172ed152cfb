//! Router-advertisement test (root, namespaces only): a host namespace attached to the lab
//! bridge by a veth sends a Router Solicitation and receives the lab's Router Advertisement
//! (from the bridge's link-local address, hop limit 255, prefix fd77::/64 with L and A).

use std::time::{Duration, Instant};

use lab::netns::{self, Netns};
use lab::ra::{PrefixInfo, link_local_from_mac};
use lab::{Lab, LabSpec, solicit_router};

#[test]
fn solicitation_from_another_namespace_gets_the_lab_advert() {
    let t = Instant::now();
    let spec = LabSpec {
        prefix: "lr".into(),
        ..LabSpec::default()
    };
    let lab = Lab::start(spec.clone()).unwrap();
    let host = Netns::create("lh").unwrap();
    let names = [lab.netns().name().to_owned(), host.name().to_owned()];
    lab.attach(&host, "eth0").unwrap();
    // a router does not solicit by itself, so only our RS asks for an RA
    host.set_sysctl("net/ipv6/conf/all/forwarding", "1")
        .unwrap();
    host.add_addr("eth0", "fe80::2".parse().unwrap(), 64)
        .unwrap();
    let ra = lab.ra().expect("RA responder runs by default");
    let before = ra.solicitations();
    eprintln!("lab + host namespace ready after {:?}", t.elapsed());

    let got = solicit_router(&host, "eth0", Duration::from_secs(5)).unwrap();
    eprintln!("RA received {:?} after the RS", got.after);
    assert_eq!(got.src, link_local_from_mac(spec.bridge_mac));
    assert_eq!(got.src, ra.source());
    assert_eq!(got.hop_limit, Some(255));
    assert_eq!(got.advert.source_mac, Some(spec.bridge_mac));
    assert_eq!(got.advert.router_lifetime, 0);
    assert!(!got.advert.managed && !got.advert.other_config);
    assert_eq!(
        got.advert.prefixes,
        [PrefixInfo {
            prefix: "fd77::".parse().unwrap(),
            len: 64,
            on_link: true,
            autonomous: true,
            valid_lifetime: 86_400,
            preferred_lifetime: 14_400,
        }]
    );
    assert_eq!(ra.solicitations(), before + 1);
    assert!(
        ra.adverts_sent() > ra.solicitations(),
        "the unsolicited RA at start went out too"
    );

    // a second solicitation is answered again
    solicit_router(&host, "eth0", Duration::from_secs(5)).unwrap();
    assert_eq!(ra.solicitations(), before + 2);

    drop(host);
    drop(lab);
    for n in &names {
        assert!(!netns::exists(n).unwrap(), "{n} left behind");
    }
}
