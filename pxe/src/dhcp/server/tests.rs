//! Socket-level tests on 127.0.0.1 with random ports, in relay mode: the test socket plays
//! the relay (giaddr = 127.0.0.1) and the server replies to giaddr at the configured port.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dhcproto::v4;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use super::*;
use crate::dhcp::config::{DhcpSection, PoolSection};
use crate::dhcp::lease::MemoryLeaseStore;
use crate::dhcp::testutil::{bytes, discover, mac, select};
use crate::dhcp::wire;
use crate::gate::{HostBoot, NullSink, StaticDirectory};

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

struct Running {
    relay: UdpSocket,
    server: SocketAddr,
    store: Arc<MemoryLeaseStore>,
    lookup: LeaseLookup,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

/// A loopback subnet whose replies go to the test's `relay` socket (relay mode, giaddr set).
fn relay_section(relay: &UdpSocket) -> DhcpSection {
    let mut s = DhcpSection::single_subnet(
        LOOPBACK,
        "127.0.0.0/24".parse().unwrap(),
        PoolSection {
            start: "127.0.0.100".parse().unwrap(),
            end: "127.0.0.250".parse().unwrap(),
        },
    );
    s.listen_port = 0;
    s.relay_port = relay.local_addr().unwrap().port();
    s
}

async fn start() -> Running {
    let relay = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let s = relay_section(&relay);
    let cfg = DhcpConfig::from_section(&s).unwrap();
    let store = Arc::new(MemoryLeaseStore::default());
    let open = HostBoot {
        name: "bench".into(),
        reserved_ip: None,
        boot_id: lm_api::BootId::from_random(3),
    };
    let dir = Arc::new(StaticDirectory {
        hosts: Default::default(),
        default: Some(open),
    });
    let server = DhcpServer::bind(cfg, store.clone(), dir, Arc::new(NullSink)).unwrap();
    let port = server.local_addr().unwrap().port();
    let lookup = server.lookup();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running {
        relay,
        server: SocketAddr::from((LOOPBACK, port)),
        store,
        lookup,
        stop,
        task,
    }
}

fn relayed(mut m: v4::Message) -> Vec<u8> {
    m.set_giaddr(LOOPBACK);
    bytes(&m)
}

async fn recv(relay: &UdpSocket, wait: Duration) -> Option<v4::Message> {
    let mut buf = vec![0u8; 2048];
    let (n, _) = tokio::time::timeout(wait, relay.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    wire::decode(buf.get(..n)?).ok()
}

#[tokio::test]
async fn relayed_dora_over_udp_persists_before_the_ack() {
    let r = start().await;
    r.relay
        .send_to(&relayed(discover(1)), r.server)
        .await
        .unwrap();
    let offer = recv(&r.relay, Duration::from_secs(5)).await.expect("OFFER");
    assert_eq!(offer.opts().msg_type(), Some(v4::MessageType::Offer));
    assert_eq!(offer.giaddr(), LOOPBACK);
    let addr = offer.yiaddr();
    r.relay
        .send_to(&relayed(select(1, addr, LOOPBACK)), r.server)
        .await
        .unwrap();
    let ack = recv(&r.relay, Duration::from_secs(5)).await.expect("ACK");
    assert_eq!(
        (ack.opts().msg_type(), ack.yiaddr()),
        (Some(v4::MessageType::Ack), addr)
    );
    assert_eq!(r.store.durable().get(&addr).map(|l| l.mac), Some(mac(1)));
    assert_eq!(r.lookup.mac_for(addr), Some(mac(1)));
    assert_eq!(r.lookup.lease_of(mac(1)).map(|l| l.address), Some(addr));

    r.store.fail_flushes(true);
    r.relay
        .send_to(&relayed(select(1, addr, LOOPBACK)), r.server)
        .await
        .unwrap();
    r.relay
        .send_to(&relayed(discover(2)), r.server)
        .await
        .unwrap();
    let only = recv(&r.relay, Duration::from_secs(5))
        .await
        .expect("the OFFER still goes out");
    assert_eq!(only.opts().msg_type(), Some(v4::MessageType::Offer));
    assert!(
        recv(&r.relay, Duration::from_millis(300)).await.is_none(),
        "no ACK while the store fails"
    );

    r.relay.send_to(b"garbage", r.server).await.unwrap();
    r.stop.send(()).unwrap();
    r.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn many_clients_in_bursts_get_distinct_addresses() {
    let r = start().await;
    let clients: Vec<u8> = (1..=60).collect();
    for n in &clients {
        r.relay
            .send_to(&relayed(discover(*n)), r.server)
            .await
            .unwrap();
    }
    let mut offers = std::collections::HashMap::new();
    while offers.len() < clients.len() {
        let m = recv(&r.relay, Duration::from_secs(5))
            .await
            .expect("every DISCOVER is answered");
        offers.insert(m.chaddr().to_vec(), m.yiaddr());
    }
    for n in &clients {
        let a = offers[&mac(*n).octets().to_vec()];
        r.relay
            .send_to(&relayed(select(*n, a, LOOPBACK)), r.server)
            .await
            .unwrap();
    }
    let mut acked = std::collections::HashSet::new();
    for _ in &clients {
        let m = recv(&r.relay, Duration::from_secs(5))
            .await
            .expect("every REQUEST is answered");
        assert_eq!(m.opts().msg_type(), Some(v4::MessageType::Ack));
        assert!(acked.insert(m.yiaddr()), "{} ACKed twice", m.yiaddr());
    }
    assert_eq!(r.store.durable().len(), clients.len());
    assert!(r.store.flush_count() <= clients.len() as u64);
    r.stop.send(()).unwrap();
    r.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn binding_a_missing_interface_names_it() {
    let mut s = DhcpSection::single_subnet(
        LOOPBACK,
        "127.0.0.0/24".parse().unwrap(),
        PoolSection {
            start: "127.0.0.100".parse().unwrap(),
            end: "127.0.0.101".parse().unwrap(),
        },
    );
    s.listen_port = 0;
    s.interface = Some("nosuchif0".into());
    let cfg = DhcpConfig::from_section(&s).unwrap();
    let err = DhcpServer::bind(
        cfg,
        Arc::new(MemoryLeaseStore::default()),
        Arc::new(StaticDirectory::default()),
        Arc::new(NullSink),
    )
    .unwrap_err();
    assert!(err.to_string().contains("bound to nosuchif0"), "{err}");
}

#[tokio::test]
async fn start_loads_leases_and_drops_shadowed_ones() {
    use crate::dhcp::lease::{Lease, LeaseState};
    let older = Lease {
        mac: mac(5),
        address: "127.0.0.120".parse().unwrap(),
        expires_at: u64::MAX - 1,
        state: LeaseState::Bound,
        hostname: None,
        client_id: None,
    };
    let newer = Lease {
        address: "127.0.0.121".parse().unwrap(),
        expires_at: u64::MAX,
        ..older.clone()
    };
    let store = Arc::new(MemoryLeaseStore::with_leases([older, newer.clone()]));
    let mut s = DhcpSection::single_subnet(
        LOOPBACK,
        "127.0.0.0/24".parse().unwrap(),
        PoolSection {
            start: "127.0.0.100".parse().unwrap(),
            end: "127.0.0.200".parse().unwrap(),
        },
    );
    s.listen_port = 0;
    let server = DhcpServer::bind(
        DhcpConfig::from_section(&s).unwrap(),
        store.clone(),
        Arc::new(StaticDirectory::default()),
        Arc::new(NullSink),
    )
    .unwrap();
    assert_eq!(
        store.durable().into_values().collect::<Vec<_>>(),
        vec![newer.clone()]
    );
    assert_eq!(server.lookup().mac_for(newer.address), Some(mac(5)));
    assert_eq!(
        server.lookup().mac_for("127.0.0.120".parse().unwrap()),
        None
    );
}

/// A store whose flush blocks until the test opens it.
#[derive(Default)]
struct GatedStore {
    inner: MemoryLeaseStore,
    open: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
}

impl GatedStore {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl LeaseStore for GatedStore {
    fn load_all(&self) -> Result<Vec<crate::dhcp::Lease>, StoreError> {
        self.inner.load_all()
    }
    fn put(&self, lease: &crate::dhcp::Lease) -> Result<(), StoreError> {
        self.inner.put(lease)
    }
    fn remove(&self, addr: Ipv4Addr) -> Result<(), StoreError> {
        self.inner.remove(addr)
    }
    fn flush(&self) -> Result<(), StoreError> {
        // Bounded, so a failing test cannot hang the runtime's shutdown.
        let open = self.open.lock().unwrap();
        let (open, _) = self
            .opened
            .wait_timeout_while(open, Duration::from_secs(10), |o| !*o)
            .unwrap();
        drop(open);
        self.inner.flush()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_flow_while_a_flush_is_slow_and_the_ack_waits_for_it() {
    let relay = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let s = relay_section(&relay);
    let store = Arc::new(GatedStore::default());
    let open = HostBoot {
        name: "bench".into(),
        reserved_ip: None,
        boot_id: lm_api::BootId::from_random(3),
    };
    let dir = Arc::new(StaticDirectory {
        hosts: Default::default(),
        default: Some(open),
    });
    let server = DhcpServer::bind(
        DhcpConfig::from_section(&s).unwrap(),
        store.clone(),
        dir,
        Arc::new(NullSink),
    )
    .unwrap();
    let to = SocketAddr::from((LOOPBACK, server.local_addr().unwrap().port()));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    relay.send_to(&relayed(discover(1)), to).await.unwrap();
    let addr = recv(&relay, Duration::from_secs(5))
        .await
        .expect("OFFER")
        .yiaddr();
    relay
        .send_to(&relayed(select(1, addr, LOOPBACK)), to)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    relay.send_to(&relayed(discover(2)), to).await.unwrap();
    let offer = recv(&relay, Duration::from_secs(5))
        .await
        .expect("OFFER during the flush");
    assert_eq!(
        (offer.opts().msg_type(), offer.chaddr()),
        (Some(v4::MessageType::Offer), &mac(2).octets()[..])
    );
    assert!(
        recv(&relay, Duration::from_millis(200)).await.is_none(),
        "the ACK waits for the flush"
    );
    assert!(store.inner.durable().is_empty());

    store.open();
    let ack = recv(&relay, Duration::from_secs(5))
        .await
        .expect("ACK after the flush");
    assert_eq!(
        (ack.opts().msg_type(), ack.yiaddr()),
        (Some(v4::MessageType::Ack), addr)
    );
    assert_eq!(
        store.inner.durable().get(&addr).map(|l| l.mac),
        Some(mac(1))
    );
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}
