//! The Lease Manager: the lender's control plane.
//!
//! - Pure cores: [`fsm`] (server boot states), [`power::wol_packet`], [`config`] validation,
//!   [`console::render`].
//! - Shells: [`store`] (sled, the only crate that touches it), [`inventory`] (in-memory view +
//!   store; the PXE services' netboot gate), [`events`] (PXE/agent events -> timeline and
//!   state), [`wake`] (Wake-on-LAN supervisor), [`api`] (the `/v1` API over mutual TLS ([`tls_server`]) and the
//!   operator's local socket), [`ledger`] (leases, pure), [`boot_http`] (plain HTTP for iPXE), [`daemon`] (wiring).

pub mod api;
pub mod audit;
pub mod bench_pxe;
pub mod boot_http;
pub mod ca;
pub mod clock;
pub mod config;
pub mod console;
pub mod daemon;
pub mod dhcp_store;
pub mod events;
pub mod fsm;
pub mod group_commit;
pub mod http_util;
pub mod inventory;
pub mod ledger;
pub mod power;
pub mod store;
pub mod store_ledger;
pub mod tls_server;
pub mod wake;
