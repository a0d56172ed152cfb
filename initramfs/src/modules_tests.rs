//! Tests of `modules.rs`: resolution against lines taken from the Debian 6.1.0-56 kernel's
//! `modules.dep`, hostile inputs, and a property test on random dependency graphs.

use super::*;
use proptest::prelude::*;

/// Lines from `depmod -b root 6.1.0-56-amd64` output (linux-image-6.1.0-56-amd64 6.1.192-2).
const DEBIAN: &str = "\
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko:
kernel/drivers/net/tun.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/arch/x86/crypto/chacha-x86_64.ko:
";

fn names(order: &[ResolvedModule]) -> Vec<&str> {
    order.iter().map(|m| m.name.as_str()).collect()
}

#[test]
fn resolves_the_default_list_dependencies_first() {
    let dep = ModulesDep::parse(DEBIAN).unwrap();
    assert_eq!(dep.len(), 12);
    let order = dep
        .resolve(&["virtio_pci", "virtio_net", "e1000", "e1000e", "tun"])
        .unwrap();
    assert_eq!(
        names(&order),
        [
            "virtio_ring",
            "virtio",
            "virtio_pci_modern_dev",
            "virtio_pci_legacy_dev",
            "virtio_pci",
            "failover",
            "net_failover",
            "virtio_net",
            "e1000",
            "e1000e",
            "tun",
        ]
    );
    assert_eq!(order[4].path, "kernel/drivers/virtio/virtio_pci.ko");
}

#[test]
fn dash_and_underscore_are_equivalent_and_duplicates_collapse() {
    let dep = ModulesDep::parse(DEBIAN).unwrap();
    let order = dep
        .resolve(&["virtio-net", "virtio_net", "chacha_x86-64", "failover"])
        .unwrap();
    assert_eq!(
        names(&order),
        [
            "virtio_ring",
            "virtio",
            "failover",
            "net_failover",
            "virtio_net",
            "chacha_x86_64"
        ]
    );
    assert!(dep.get("chacha-x86_64").is_some());
}

#[test]
fn missing_module_is_named() {
    let dep = ModulesDep::parse(DEBIAN).unwrap();
    let err = dep.resolve(&["tun", "wireguard"]).unwrap_err();
    assert!(matches!(&err, ModulesError::UnknownModule { name, .. } if name == "wireguard"));
    assert!(err.to_string().contains("wireguard"), "{err}");
    let ok = dep.resolve(&["virtio"]).unwrap();
    assert_eq!(names(&ok), ["virtio_ring", "virtio"]);
    let err = dep.resolve(&["virt"]).unwrap_err();
    assert!(err.to_string().contains("similar: virtio"), "{err}");
    assert!(matches!(
        dep.resolve(&["../tun"]),
        Err(ModulesError::InvalidName { .. })
    ));
    assert!(matches!(
        dep.resolve(&[""]),
        Err(ModulesError::InvalidName { .. })
    ));
}

#[test]
fn missing_dependency_line_and_cycles() {
    let dep = ModulesDep::parse("a.ko: b.ko\n").unwrap();
    assert_eq!(
        dep.resolve(&["a"]),
        Err(ModulesError::DependencyMissing {
            module: "a".into(),
            dependency: "b.ko".into()
        })
    );
    let dep = ModulesDep::parse("a.ko: b.ko\nb.ko: c.ko\nc.ko: a.ko\n").unwrap();
    assert!(matches!(
        dep.resolve(&["a"]),
        Err(ModulesError::Cycle { .. })
    ));
    let dep = ModulesDep::parse("a.ko: a.ko\n").unwrap();
    assert!(matches!(
        dep.resolve(&["a"]),
        Err(ModulesError::Cycle { .. })
    ));
}

#[test]
fn hostile_lines_are_refused() {
    type Check = fn(&ModulesError) -> bool;
    let cases: &[(&str, Check)] = &[
        ("kernel/a.ko", |e| {
            matches!(e, ModulesError::MissingColon { line: 1 })
        }),
        ("../../etc/shadow.ko:", |e| {
            matches!(e, ModulesError::BadPath { .. })
        }),
        ("a.ko: ../b.ko", |e| {
            matches!(e, ModulesError::BadPath { .. })
        }),
        ("/lib/x.ko:", |e| {
            matches!(e, ModulesError::NotRelative { .. })
        }),
        ("./x.ko:", |e| matches!(e, ModulesError::NotRelative { .. })),
        ("a//b.ko:", |e| matches!(e, ModulesError::BadPath { .. })),
        ("kernel/passwd:", |e| {
            matches!(e, ModulesError::NotAModule { .. })
        }),
        ("kernel/.ko:", |e| {
            matches!(e, ModulesError::NotAModule { .. })
        }),
        ("a.ko: b.txt", |e| {
            matches!(e, ModulesError::NotAModule { .. })
        }),
        ("x\r.ko:", |e| matches!(e, ModulesError::BadPath { .. })),
        ("a/x.ko:\nb/x.ko:", |e| {
            matches!(
                e,
                ModulesError::DuplicateModule {
                    line: 2,
                    first: 1,
                    ..
                }
            )
        }),
        ("a/x-y.ko:\nb/x_y.ko:", |e| {
            matches!(e, ModulesError::DuplicateModule { .. })
        }),
    ];
    for (text, check) in cases {
        let err = ModulesDep::parse(text).unwrap_err();
        assert!(check(&err), "{text:?} gave {err:?}");
    }
}

#[test]
fn blank_lines_comments_and_compressed_modules() {
    let dep = ModulesDep::parse("\n# comment\n  \nk/a.ko.zst:\tk/b.ko.xz\nk/b.ko.xz:\n").unwrap();
    assert_eq!(names(&dep.resolve(&["a"]).unwrap()), ["b", "a"]);
    assert_eq!(module_name_from_path("k/x-y.ko.gz").as_deref(), Some("x_y"));
    assert_eq!(module_name_from_path("k/x.o"), None);
}

#[test]
fn a_very_long_chain_does_not_overflow_the_stack() {
    let n = 100_000;
    let mut text = String::new();
    for i in 0..n {
        if i + 1 < n {
            text.push_str(&format!("m{i}.ko: m{}.ko\n", i + 1));
        } else {
            text.push_str(&format!("m{i}.ko:\n"));
        }
    }
    let dep = ModulesDep::parse(&text).unwrap();
    let order = dep.resolve(&["m0"]).unwrap();
    assert_eq!(order.len(), n);
    assert_eq!(order[0].name, format!("m{}", n - 1));
    assert_eq!(order[n - 1].name, "m0");
}

proptest! {
    #[test]
    fn random_graphs_resolve_in_dependency_order(
        edges in proptest::collection::vec(proptest::collection::vec(any::<u16>(), 0..5), 1..30),
        requested in proptest::collection::vec(any::<u16>(), 1..6),
    ) {
        // Module i may depend only on modules j < i: a DAG.
        let n = edges.len();
        let mut text = String::new();
        let mut deps_of = Vec::new();
        for (i, picks) in edges.iter().enumerate() {
            let deps: Vec<usize> = if i == 0 {
                Vec::new()
            } else {
                picks.iter().map(|p| *p as usize % i).collect()
            };
            let list: Vec<String> = deps.iter().map(|d| format!("k/m-{d}.ko")).collect();
            text.push_str(&format!("k/m-{i}.ko: {}\n", list.join(" ")));
            deps_of.push(deps);
        }
        let dep = ModulesDep::parse(&text).unwrap();
        let wanted: Vec<String> = requested.iter().map(|r| format!("m_{}", *r as usize % n)).collect();
        let order = dep.resolve(&wanted).unwrap();
        let pos: HashMap<String, usize> =
            order.iter().enumerate().map(|(i, m)| (m.name.clone(), i)).collect();
        prop_assert_eq!(pos.len(), order.len(), "no duplicates");
        for w in &wanted {
            prop_assert!(pos.contains_key(w));
        }
        for m in &order {
            let i: usize = m.name.trim_start_matches("m_").parse().unwrap();
            for d in &deps_of[i] {
                let dpos = pos.get(&format!("m_{d}"));
                prop_assert!(dpos.is_some_and(|p| *p < pos[&m.name]));
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}", name in "[a-z_-]{1,8}") {
        if let Ok(dep) = ModulesDep::parse(&text) {
            let _ = dep.resolve(&[name]);
        }
    }

    #[test]
    fn line_shaped_garbage_never_panics(
        lines in proptest::collection::vec("[a-z./_:-]{0,12}( [a-z./_-]{0,12}){0,3}", 0..20),
    ) {
        if let Ok(dep) = ModulesDep::parse(&lines.join("\n")) {
            let names: Vec<String> = dep.by_name.keys().cloned().collect();
            let _ = dep.resolve(&names);
        }
    }
}
