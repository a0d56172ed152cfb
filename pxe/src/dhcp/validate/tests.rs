//! Tests of config validation: defaults, the documented TOML, and one mistake per field.

use super::*;
use crate::dhcp::config::PoolSection;
use crate::dhcp::config::ReservationSection;

fn base() -> DhcpSection {
    DhcpSection::single_subnet(
        "10.77.0.1".parse().unwrap(),
        "10.77.0.0/24".parse().unwrap(),
        PoolSection {
            start: "10.77.0.100".parse().unwrap(),
            end: "10.77.0.199".parse().unwrap(),
        },
    )
}

fn field_of(s: &DhcpSection) -> String {
    DhcpConfig::from_section(s).unwrap_err().field
}

#[test]
fn defaults_validate_and_derive_t1_t2() {
    let c = DhcpConfig::from_section(&base()).unwrap();
    assert_eq!(
        (c.lease_time, c.renewal_time, c.rebinding_time),
        (3600, 1800, 3150)
    );
    assert_eq!(c.boot.next_server, "10.77.0.1".parse::<Ipv4Addr>().unwrap());
    let mac = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    assert_eq!(
        c.boot.ipxe_script_url.render(mac),
        "http://10.77.0.1:8080/boot/52-54-00-12-34-56.ipxe"
    );
}

#[test]
fn parses_the_documented_toml() {
    let text = r#"
        server_address = "10.77.0.1"
        interface = "br0"
        [boot]
        uefi_file = "snponly.efi"
        [[subnets]]
        network = "10.77.0.0/24"
        pools = [{ start = "10.77.0.100", end = "10.77.0.199" }]
        routers = ["10.77.0.1"]
        [[reservations]]
        mac = "52:54:00:12:34:56"
        address = "10.77.0.10"
    "#;
    let s: DhcpSection = toml::from_str(text).unwrap();
    let c = DhcpConfig::from_section(&s).unwrap();
    assert_eq!(c.boot.uefi_file, "snponly.efi");
    assert_eq!(c.reserved_by_addr.len(), 1);
    let typo = text.replace("routers", "router");
    let err = toml::from_str::<DhcpSection>(&typo)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn each_mistake_names_its_field() {
    let mut s = base();
    s.subnets[0].pools[0].end = "10.77.1.5".parse().unwrap();
    assert_eq!(field_of(&s), "dhcp.subnets[0].pools[0].end");

    let mut s = base();
    s.server_address = "10.78.0.1".parse().unwrap();
    assert_eq!(field_of(&s), "dhcp.server_address");

    let mut s = base();
    s.server_address = "10.77.0.150".parse().unwrap();
    assert_eq!(field_of(&s), "dhcp.server_address");

    let mut s = base();
    s.subnets[0].pools.push(PoolSection {
        start: "10.77.0.150".parse().unwrap(),
        end: "10.77.0.160".parse().unwrap(),
    });
    assert_eq!(field_of(&s), "dhcp.subnets[0].pools[1]");

    let mut s = base();
    s.subnets.push(s.subnets[0].clone());
    assert_eq!(field_of(&s), "dhcp.subnets[1].network");

    let mut s = base();
    s.renewal_time_secs = Some(4000);
    assert_eq!(field_of(&s), "dhcp.renewal_time_secs");

    let mut s = base();
    s.boot.ipxe_script_url = format!("http://{}/{{mac}}/{{lease}}", "x".repeat(10));
    assert_eq!(field_of(&s), "dhcp.boot.ipxe_script_url");

    let mut s = base();
    s.boot.ipxe_script_url = format!("http://{}/{{mac}}", "x".repeat(120));
    assert_eq!(field_of(&s), "dhcp.boot.ipxe_script_url");

    let mut s = base();
    s.boot.bios_file = "a b".into();
    assert_eq!(field_of(&s), "dhcp.boot.bios_file");

    let mut s = base();
    s.interface = Some("a-very-long-interface-name".into());
    assert_eq!(field_of(&s), "dhcp.interface");

    let mut s = base();
    let mac: MacAddr = "52:54:00:00:00:01".parse().unwrap();
    s.reservations = vec![
        ReservationSection {
            mac,
            address: "10.77.0.10".parse().unwrap(),
        },
        ReservationSection {
            mac: "52:54:00:00:00:02".parse().unwrap(),
            address: "10.77.0.10".parse().unwrap(),
        },
    ];
    assert_eq!(field_of(&s), "dhcp.reservations[1].address");

    let mut s = base();
    s.subnets[0].routers = vec!["10.1.1.1".parse().unwrap()];
    let e = DhcpConfig::from_section(&s).unwrap_err();
    assert_eq!(e.field, "dhcp.subnets[0].routers[0]");
    assert!(e.to_string().contains("must be on the subnet"), "{e}");
}
