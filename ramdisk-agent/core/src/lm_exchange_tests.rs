//! Tests of the hello/report exchange: request bytes and verdicts. No IO.

use std::net::Ipv4Addr;

use lm_api::HardwareFacts;

use super::*;
use crate::http::parse_response;
use crate::lm_url::LmHost;

fn url() -> LmUrl {
    LmUrl::new(LmHost::Ip(Ipv4Addr::new(10, 77, 0, 1)), 8443)
}

fn resp(raw: &str) -> Response {
    parse_response(raw.as_bytes(), true).unwrap().unwrap()
}

fn answer(status: &str, body: &str) -> Response {
    resp(&format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ))
}

fn boot() -> (BootId, MacAddr) {
    (
        "00000000000000ff".parse().unwrap(),
        "52:54:00:00:00:01".parse().unwrap(),
    )
}

#[test]
fn hello_request_bytes() {
    let (boot_id, boot_mac) = boot();
    let hello = HelloRequest {
        boot_id,
        boot_mac,
        address: Ipv4Addr::new(10, 77, 0, 50),
        agent_version: "0.1.0".into(),
        uptime_ms: 1500,
        facts: HardwareFacts::default(),
    };
    let bytes = hello_request(&url(), "0.1.0", &hello).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("POST /v1/agent/hello HTTP/1.1\r\nHost: 10.77.0.1:8443\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nUser-Agent: lease-agent/0.1.0\r\n"));
    assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
    assert!(head.ends_with("Connection: close"));
    assert_eq!(serde_json::from_str::<HelloRequest>(body).unwrap(), hello);
}

#[test]
fn report_request_and_detail_cap() {
    let (boot_id, boot_mac) = boot();
    let long = "é".repeat(3000); // 6000 bytes, two per character
    let r = report(boot_id, boot_mac, AgentPhase::Dhcp, false, &long, 0);
    assert_eq!(r.detail.len(), MAX_DETAIL);
    assert_eq!(r.attempt, 1);
    let odd = format!("x{long}");
    let r = report(boot_id, boot_mac, AgentPhase::Dhcp, false, &odd, 4);
    assert_eq!(
        r.detail.len(),
        MAX_DETAIL - 1,
        "cut on a character boundary"
    );
    let bytes = report_request(&url(), "0.1.0", &r).unwrap();
    assert!(bytes.starts_with(b"POST /v1/agent/report HTTP/1.1\r\n"));
    assert!(matches!(
        report_request(&url(), "bad version with spaces", &r).map(|b| b.len()),
        Ok(n) if n > 0
    ));
}

#[test]
fn hello_verdicts() {
    let ok = hello_verdict(&answer("200 OK", r#"{"server":"vm1","heartbeat_secs":15}"#)).unwrap();
    assert_eq!((ok.server.as_str(), ok.heartbeat_secs), ("vm1", 15));
    let clamped = hello_verdict(&answer(
        "201 Created",
        r#"{"server":"vm1","heartbeat_secs":0}"#,
    ));
    assert_eq!(clamped.unwrap().heartbeat_secs, 1);

    let bad = hello_verdict(&answer("200 OK", r#"{"server":"vm1"}"#)).unwrap_err();
    assert!(matches!(bad, LmError::BadBody { status: 200, .. }));
    assert_eq!(bad.outcome(), Outcome::Rejected);
    let extra = hello_verdict(&answer(
        "200 OK",
        r#"{"server":"a","heartbeat_secs":1,"x":2}"#,
    ));
    assert!(
        matches!(extra, Err(LmError::BadBody { .. })),
        "unknown fields are refused"
    );

    let refused = hello_verdict(&answer(
        "409 Conflict",
        r#"{"error":"server vm1 is idle: not woken by the Lease Manager"}"#,
    ))
    .unwrap_err();
    assert_eq!(refused.outcome(), Outcome::Rejected);
    assert_eq!(
        refused.to_string(),
        "the lease manager refused /v1/agent/hello with 409: server vm1 is idle: not woken by the Lease Manager"
    );

    for (status, body, want) in [
        ("500 Internal Server Error", "", Outcome::Transient),
        ("503 Service Unavailable", "busy\nline", Outcome::Transient),
        ("429 Too Many Requests", "", Outcome::Transient),
        ("408 Request Timeout", "", Outcome::Transient),
        ("404 Not Found", "", Outcome::Rejected),
        ("302 Found", "", Outcome::Rejected),
    ] {
        let e = hello_verdict(&answer(status, body)).unwrap_err();
        assert_eq!(e.outcome(), want, "{status}");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }
    let e = hello_verdict(&answer("500 Internal Server Error", "")).unwrap_err();
    assert!(
        e.to_string().ends_with("(500): Internal Server Error"),
        "{e}"
    );
}

#[test]
fn report_verdicts() {
    assert_eq!(report_verdict(&answer("204 No Content", "")), Ok(()));
    assert_eq!(report_verdict(&answer("200 OK", "anything")), Ok(()));
    let e = report_verdict(&answer(
        "400 Bad Request",
        r#"{"error":"detail longer than 4 KiB"}"#,
    ));
    assert!(
        matches!(e, Err(LmError::Refused { status: 400, ref message, .. }) if message == "detail longer than 4 KiB")
    );
}

const LEASE: &str = "l-0123456789abcdef";

fn enrolled_body(lease: &str, cert: &str, serial: &str, server: &str) -> String {
    format!(
        r#"{{"server":"{server}","lease":"{lease}","cert_pem":"{cert}","serial":"{serial}","not_after_ms":1700000000000,"tunnel":"wireguard","heartbeat_secs":0}}"#
    )
}

const CERT: &str = "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n";

#[test]
fn enroll_and_heartbeat_request_bytes() {
    let (boot_id, boot_mac) = boot();
    let req = EnrollRequest {
        lease: LEASE.parse().unwrap(),
        boot_id,
        boot_mac,
        token: "ab".repeat(32),
        csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\n".into(),
    };
    let text = String::from_utf8(enroll_request(&url(), "0.1.0", &req).unwrap()).unwrap();
    assert!(
        text.starts_with("POST /v1/agent/enroll HTTP/1.1\r\n"),
        "{text}"
    );
    let body = text.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(serde_json::from_str::<EnrollRequest>(body).unwrap(), req);

    let hb = Heartbeat {
        boot_id,
        boot_mac,
        uptime_ms: 7,
    };
    let text = String::from_utf8(heartbeat_request(&url(), "0.1.0", &hb).unwrap()).unwrap();
    assert!(text.starts_with("POST /v1/agent/heartbeat HTTP/1.1\r\n"));
    assert!(text.ends_with(
        r#"{"boot_id":"00000000000000ff","boot_mac":"52:54:00:00:00:01","uptime_ms":7}"#
    ));
}

#[test]
fn enroll_verdicts() {
    let lease: LeaseId = LEASE.parse().unwrap();
    let ok = enroll_verdict(
        &answer("200 OK", &enrolled_body(LEASE, CERT, "1f2e", "vm1")),
        lease,
    )
    .unwrap();
    assert_eq!((ok.server.as_str(), ok.serial.as_str()), ("vm1", "1f2e"));
    assert_eq!(ok.heartbeat_secs, 1, "clamped");

    // 400 and 403 are final: the token is spent.
    for status in ["400 Bad Request", "403 Forbidden"] {
        let e = enroll_verdict(
            &answer(
                status,
                r#"{"error":"enrollment refused: unknown enrollment token"}"#,
            ),
            lease,
        )
        .unwrap_err();
        assert!(matches!(e, LmError::Denied { .. }), "{e:?}");
        assert_eq!(e.outcome(), Outcome::Fatal);
        assert!(
            e.to_string()
                .contains("unknown enrollment token; retrying cannot help"),
            "{e}"
        );
    }
    for (status, want) in [
        ("503 Service Unavailable", Outcome::Transient),
        ("404 Not Found", Outcome::Rejected),
        ("409 Conflict", Outcome::Rejected),
    ] {
        let e = enroll_verdict(&answer(status, ""), lease).unwrap_err();
        assert_eq!(e.outcome(), want, "{status}");
    }

    // Answers that do not fit the request.
    for (body, what) in [
        (
            enrolled_body("l-00000000000000aa", CERT, "1f", "vm1"),
            "lease l-00000000000000aa",
        ),
        (enrolled_body(LEASE, "junk", "1f", "vm1"), "exactly one PEM"),
        (
            enrolled_body(LEASE, &CERT.repeat(2), "1f", "vm1"),
            "exactly one PEM",
        ),
        (enrolled_body(LEASE, CERT, "", "vm1"), "serial"),
        (enrolled_body(LEASE, CERT, "xyz", "vm1"), "serial"),
        (enrolled_body(LEASE, CERT, &"a".repeat(41), "vm1"), "serial"),
        (enrolled_body(LEASE, CERT, "1f", ""), "server name"),
        (enrolled_body(LEASE, CERT, "1f", "vm 1"), "server name"),
    ] {
        let e = enroll_verdict(&answer("200 OK", &body), lease).unwrap_err();
        assert!(matches!(e, LmError::Inconsistent { .. }), "{what}: {e:?}");
        assert_eq!(e.outcome(), Outcome::Rejected);
        assert!(e.to_string().contains(what), "{e}");
    }
    let e = enroll_verdict(&answer("200 OK", "{}"), lease).unwrap_err();
    assert!(matches!(e, LmError::BadBody { .. }));
}

#[test]
fn heartbeat_verdicts() {
    let r = heartbeat_verdict(&answer(
        "200 OK",
        r#"{"action":"release","lease_ends_ms":5}"#,
    ))
    .unwrap();
    assert_eq!(r.action, lm_api::AgentAction::Release);
    let r = heartbeat_verdict(&answer(
        "200 OK",
        r#"{"action":"continue","lease_ends_ms":null}"#,
    ))
    .unwrap();
    assert_eq!(
        (r.action, r.lease_ends_ms),
        (lm_api::AgentAction::Continue, None)
    );
    let e = heartbeat_verdict(&answer("200 OK", r#"{"action":"explode"}"#)).unwrap_err();
    assert!(matches!(e, LmError::BadBody { .. }));
    let e = heartbeat_verdict(&answer("401 Unauthorized", r#"{"error":"x"}"#)).unwrap_err();
    assert_eq!(e.outcome(), Outcome::Rejected);
}
