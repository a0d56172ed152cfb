//! Who is asking: a BIOS or UEFI PXE ROM, iPXE, the ramdisk agent, or something else, and
//! what it should boot. Pure: no IO.
//!
//! Rules, first match wins:
//! 1. option 60 starts with the agent's vendor class (`lease-agent`) -> `agent`: address only;
//! 2. option 77 contains `iPXE`, or option 175 (iPXE encapsulated options) is present ->
//!    `ipxe`: the per-host script URL;
//! 3. option 60 starts with `PXEClient` -> by option 93 (RFC 4578): 0 -> `pxe-bios`
//!    (BIOS boot file), 7 or 9 -> `pxe-uefi` (UEFI x64 boot file), anything else or missing ->
//!    `other` with no boot file (the engine logs the architecture);
//! 4. anything else -> `other`: address only.
//!
//! Whenever option 60 starts with `PXEClient` (PXE ROMs and iPXE alike) the reply carries
//! option 60 `PXEClient`; without it iPXE waits about 16 s for a ProxyDHCP offer.

use std::fmt;

use dhcproto::v4;
use lm_api::MacAddr;

use super::validate::BootConfig;

/// Vendor class prefix of PXE clients (option 60).
pub const PXE_VENDOR_CLASS: &[u8] = b"PXEClient";
/// Option code iPXE uses for its encapsulated options.
pub const IPXE_ENCAP_OPTION: u8 = 175;

/// The client class reported in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientClass {
    /// A BIOS PXE ROM.
    PxeBios,
    /// A UEFI x64 PXE ROM.
    PxeUefi,
    /// iPXE (chain-loaded, or the NIC's own ROM).
    Ipxe,
    /// The ramdisk agent's DHCP client.
    Agent,
    /// Anything else (including PXE ROMs of unknown architecture).
    Other,
}

impl ClientClass {
    /// The name used in `EventKind::Dhcp::client`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::PxeBios => "pxe-bios",
            Self::PxeUefi => "pxe-uefi",
            Self::Ipxe => "ipxe",
            Self::Agent => "agent",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for ClientClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// The class.
    pub class: ClientClass,
    /// Option 60 started with `PXEClient`: echo option 60 `PXEClient` in the reply.
    pub pxe: bool,
    /// Option 93 (first architecture), if sent.
    pub arch: Option<u16>,
}

impl Classification {
    /// A PXE ROM whose architecture has no boot file here (log it).
    pub fn unknown_arch(&self) -> bool {
        self.pxe && self.class == ClientClass::Other
    }
}

fn vendor_class(msg: &v4::Message) -> Option<&[u8]> {
    match msg.opts().get(v4::OptionCode::ClassIdentifier) {
        Some(v4::DhcpOption::ClassIdentifier(v)) => Some(v),
        _ => None,
    }
}

fn is_ipxe(msg: &v4::Message) -> bool {
    let user_class_says_ipxe = match msg.opts().get(v4::OptionCode::UserClass) {
        Some(v4::DhcpOption::UserClass(v)) => v.windows(4).any(|w| w == b"iPXE"),
        _ => false,
    };
    user_class_says_ipxe || msg.opts().contains(v4::OptionCode::from(IPXE_ENCAP_OPTION))
}

/// Classifies a request; `agent_class` is the agent's option 60.
pub fn classify(msg: &v4::Message, agent_class: &[u8]) -> Classification {
    let vc = vendor_class(msg).unwrap_or_default();
    let pxe = vc.starts_with(PXE_VENDOR_CLASS);
    let arch = match msg.opts().get(v4::OptionCode::ClientSystemArchitecture) {
        Some(v4::DhcpOption::ClientSystemArchitecture(a)) => Some(u16::from(*a)),
        _ => None,
    };
    let class = if !agent_class.is_empty() && vc.starts_with(agent_class) {
        ClientClass::Agent
    } else if is_ipxe(msg) {
        ClientClass::Ipxe
    } else if pxe {
        match arch {
            Some(0) => ClientClass::PxeBios,
            Some(7 | 9) => ClientClass::PxeUefi,
            _ => ClientClass::Other,
        }
    } else {
        ClientClass::Other
    };
    Classification {
        class,
        pxe: pxe && class != ClientClass::Agent,
        arch,
    }
}

/// What goes into the `file` field (and option 67), if anything.
pub fn boot_file(c: &Classification, boot: &BootConfig, mac: MacAddr) -> Option<String> {
    match c.class {
        ClientClass::Ipxe => Some(boot.ipxe_script_url.render(mac)),
        ClientClass::PxeBios => Some(boot.bios_file.clone()),
        ClientClass::PxeUefi => Some(boot.uefi_file.clone()),
        ClientClass::Agent | ClientClass::Other => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::testutil::{config, discover};

    fn with(opts: Vec<v4::DhcpOption>) -> v4::Message {
        let mut m = discover(1);
        for o in opts {
            m.opts_mut().insert(o);
        }
        m
    }

    fn pxe(arch: u16) -> Vec<v4::DhcpOption> {
        vec![
            v4::DhcpOption::ClassIdentifier(b"PXEClient:Arch:00000:UNDI:002001".to_vec()),
            v4::DhcpOption::ClientSystemArchitecture(arch.into()),
        ]
    }

    fn class_of(opts: Vec<v4::DhcpOption>) -> Classification {
        classify(&with(opts), b"lease-agent")
    }

    #[test]
    fn pxe_roms_by_architecture() {
        assert_eq!(class_of(pxe(0)).class, ClientClass::PxeBios);
        assert_eq!(class_of(pxe(7)).class, ClientClass::PxeUefi);
        assert_eq!(class_of(pxe(9)).class, ClientClass::PxeUefi);
        let arm = class_of(pxe(11));
        assert_eq!(arm.class, ClientClass::Other);
        assert!(arm.pxe && arm.unknown_arch() && arm.arch == Some(11));
        let no_arch = class_of(vec![v4::DhcpOption::ClassIdentifier(b"PXEClient".to_vec())]);
        assert!(no_arch.unknown_arch());
    }

    #[test]
    fn ipxe_by_user_class_or_option_175() {
        let mut o = pxe(0);
        o.push(v4::DhcpOption::UserClass(b"iPXE".to_vec()));
        let c = class_of(o);
        assert_eq!((c.class, c.pxe), (ClientClass::Ipxe, true));
        let mut o = pxe(7);
        o.push(v4::DhcpOption::Unknown(v4::UnknownOption::new(
            175.into(),
            vec![1, 1, 1],
        )));
        assert_eq!(class_of(o).class, ClientClass::Ipxe);
        let c = class_of(vec![v4::DhcpOption::UserClass(b"\x04iPXE".to_vec())]);
        assert_eq!((c.class, c.pxe), (ClientClass::Ipxe, false));
    }

    #[test]
    fn agent_and_others() {
        let c = class_of(vec![v4::DhcpOption::ClassIdentifier(
            b"lease-agent".to_vec(),
        )]);
        assert_eq!((c.class, c.pxe), (ClientClass::Agent, false));
        assert_eq!(class_of(vec![]).class, ClientClass::Other);
        let c = class_of(vec![v4::DhcpOption::ClassIdentifier(b"PXECli".to_vec())]);
        assert_eq!((c.class, c.pxe), (ClientClass::Other, false));
        assert_eq!(ClientClass::PxeUefi.to_string(), "pxe-uefi");
    }

    #[test]
    fn boot_files_per_class() {
        let cfg = config();
        let mac = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        let file = |opts| boot_file(&class_of(opts), &cfg.boot, mac);
        assert_eq!(file(pxe(0)).as_deref(), Some("undionly.kpxe"));
        assert_eq!(file(pxe(7)).as_deref(), Some("ipxe.efi"));
        assert_eq!(file(pxe(11)), None);
        assert_eq!(
            file(vec![v4::DhcpOption::UserClass(b"iPXE".to_vec())]).as_deref(),
            Some("http://10.77.0.1:8080/boot/52-54-00-12-34-56.ipxe")
        );
        assert_eq!(
            file(vec![v4::DhcpOption::ClassIdentifier(
                b"lease-agent".to_vec()
            )]),
            None
        );
    }
}
