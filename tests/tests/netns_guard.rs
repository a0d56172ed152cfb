//! Namespace tests (root): a `Netns` is created, configured, used from Rust threads and
//! deleted on drop, also when the test panics; veth pairs carry traffic between namespaces.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use lab::MacAddr;
use lab::netns::{self, Netns};

#[test]
fn namespace_is_configured_used_and_deleted() {
    let t = Instant::now();
    let a = Netns::create("lt").unwrap();
    let b = Netns::create("lt").unwrap();
    let names = (a.name().to_owned(), b.name().to_owned());
    assert_ne!(names.0, names.1);
    assert!(netns::exists(&names.0).unwrap() && netns::exists(&names.1).unwrap());

    let mac = MacAddr([0x02, 0x77, 0, 0, 0, 0x42]);
    a.add_bridge("br0", Some(mac)).unwrap();
    assert_eq!(a.mac_of("br0").unwrap(), mac);
    assert!(
        b.mac_of("br0").is_err(),
        "the bridge must exist only in its namespace"
    );
    a.add_tap("tap0", Some("br0")).unwrap();
    let tap_info = a.ip(&["-d", "link", "show", "tap0"]).unwrap();
    assert!(
        tap_info.contains("master br0") && tap_info.contains("tun type tap"),
        "{tap_info}"
    );
    let br_info = a.ip(&["-d", "link", "show", "br0"]).unwrap();
    assert!(
        br_info.contains("forward_delay 0") && br_info.contains("stp_state 0"),
        "{br_info}"
    );

    // sysctls written from a thread inside the namespace are the namespace's own
    a.set_sysctl("net/ipv6/conf/tap0/disable_ipv6", "1")
        .unwrap();
    assert_eq!(
        a.exec("cat", &["/proc/sys/net/ipv6/conf/tap0/disable_ipv6"])
            .unwrap()
            .trim(),
        "1"
    );

    netns::veth(&a, "va", &b, "vb").unwrap();
    a.add_addr("va", IpAddr::V4(Ipv4Addr::new(10, 78, 0, 1)), 24)
        .unwrap();
    b.add_addr("vb", IpAddr::V4(Ipv4Addr::new(10, 78, 0, 2)), 24)
        .unwrap();
    b.add_addr("vb", "fd78::2".parse().unwrap(), 64).unwrap();
    let v6 = b.ip(&["-6", "addr", "show", "dev", "vb"]).unwrap();
    let line = v6
        .lines()
        .find(|l| l.contains("fd78::2/64"))
        .unwrap_or_default();
    assert!(
        line.contains("nodad") && !line.contains("tentative"),
        "nodad: {v6}"
    );

    // a socket opened inside b receives what a socket opened inside a sends over the veth
    let rx = b
        .run(|| UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::new(10, 78, 0, 2), 5000)))
        .unwrap()
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    a.run(|| {
        let tx = UdpSocket::bind("10.78.0.1:0")?;
        tx.send_to(b"hello over veth", "10.78.0.2:5000")
    })
    .unwrap()
    .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = rx.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello over veth");
    assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::new(10, 78, 0, 1)));
    // the namespace is per thread: this thread never entered one
    assert!(UdpSocket::bind("10.78.0.2:0").is_err());

    drop(rx);
    drop(a);
    drop(b);
    for n in [&names.0, &names.1] {
        assert!(!netns::exists(n).unwrap(), "{n} left behind");
    }
    eprintln!("namespace test took {:?}", t.elapsed());
}

#[test]
fn namespace_is_deleted_when_the_test_panics() {
    let name = std::sync::Mutex::new(String::new());
    let result = std::panic::catch_unwind(|| {
        let ns = Netns::create("lp").unwrap();
        *name.lock().unwrap() = ns.name().to_owned();
        ns.add_bridge("br0", None).unwrap();
        panic!("test failure inside the namespace");
    });
    assert!(result.is_err());
    let name = name.into_inner().unwrap();
    assert!(!name.is_empty());
    assert!(
        !netns::exists(&name).unwrap(),
        "{name} left behind after a panic"
    );
}

#[test]
fn a_panic_inside_run_reaches_the_caller() {
    let ns = Netns::create("lr").unwrap();
    let name = ns.name().to_owned();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ns.run(|| panic!("inside")).unwrap()
    }));
    assert!(r.is_err());
    assert_eq!(ns.run(|| 7).unwrap(), 7);
    drop(ns);
    assert!(!netns::exists(&name).unwrap());
}
