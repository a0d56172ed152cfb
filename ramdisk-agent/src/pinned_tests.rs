use std::io::{Read, Write};
use std::net::TcpListener;

use rustls::pki_types::PrivateKeyDer;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, StreamOwned};

use super::*;

fn self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["gateway.invalid".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (
        cert.der().clone(),
        PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
}

#[test]
fn pins_parse_or_are_refused_without_panics() {
    let good = "ab".repeat(32);
    assert_eq!(good.parse::<Pin>().unwrap().0, [0xab; 32]);
    for bad in [
        "",
        "ab",
        &"zz".repeat(32),
        &"ab".repeat(33),
        &"é".repeat(32),
        &format!("{}é", "a".repeat(62)),
        &format!("+{}", "a".repeat(63)),
    ] {
        let err = bad.parse::<Pin>().unwrap_err();
        assert!(err.to_string().contains("64 hex digits"), "{err}");
    }
}

/// A TLS server with `cert` that answers one line; the client's outcome.
fn handshake(
    cert: &(CertificateDer<'static>, PrivateKeyDer<'static>),
    pin: Pin,
) -> Result<String, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.0.clone()], cert.1.clone_key())
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let srv = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let conn = ServerConnection::new(Arc::new(server)).unwrap();
        let mut tls = StreamOwned::new(conn, tcp);
        let _ = tls.write_all(b"hello from the gateway\n");
        let _ = tls.flush();
    });
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(PinnedVerifier::new(pin))
        .with_no_client_auth();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    let name = ServerName::try_from("any.name.invalid").unwrap();
    let conn = ClientConnection::new(Arc::new(client), name).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    let mut got = String::new();
    let r = tls.read_to_string(&mut got);
    drop(tls);
    srv.join().unwrap();
    match r {
        Ok(_) => Ok(got),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !got.is_empty() => Ok(got),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn only_the_pinned_certificate_is_accepted_whatever_its_name() {
    let gateway = self_signed();
    let other = self_signed();
    assert_eq!(
        handshake(&gateway, Pin::of(gateway.0.as_ref())).unwrap(),
        "hello from the gateway\n"
    );
    let err = handshake(&gateway, Pin::of(other.0.as_ref())).unwrap_err();
    assert!(err.contains("not the pinned gateway certificate"), "{err}");
}

#[test]
fn the_verifier_names_both_hashes_when_it_refuses() {
    let gateway = self_signed();
    let other = self_signed();
    let v = PinnedVerifier::new(Pin::of(gateway.0.as_ref()));
    let name = ServerName::try_from("x").unwrap();
    assert!(
        v.verify_server_cert(&gateway.0, &[], &name, &[], UnixTime::now())
            .is_ok()
    );
    let err = v
        .verify_server_cert(&other.0, &[], &name, &[], UnixTime::now())
        .unwrap_err()
        .to_string();
    assert!(err.contains(&hex(&Pin::of(other.0.as_ref()).0)), "{err}");
    assert!(err.contains(&hex(&Pin::of(gateway.0.as_ref()).0)), "{err}");
}
