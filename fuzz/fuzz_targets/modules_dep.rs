//! Fuzz target: arbitrary bytes as `modules.dep` text through `initramfs::modules::ModulesDep`.
//! Nothing may panic (a hostile chain or cycle must not overflow the stack). For an accepted
//! file, every path is a clean relative module path, and resolving any module gives a load
//! order without duplicates in which every module comes after all of its dependencies.

#![no_main]

use std::collections::HashMap;

use initramfs::cpio::normalize;
use initramfs::modules::{ModulesDep, module_name_from_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(dep) = ModulesDep::parse(text) else {
        return;
    };
    let names: Vec<String> = dep.entries().map(|e| e.name.clone()).collect();
    for e in dep.entries() {
        for path in std::iter::once(&e.path).chain(&e.deps) {
            assert_eq!(normalize(path).as_deref(), Ok(path.as_str()));
            assert!(module_name_from_path(path).is_some());
        }
        assert!(dep.get(&e.name.replace('_', "-")).is_some());
    }
    // Each module alone, then all of them at once.
    let requests: Vec<Vec<String>> = names
        .iter()
        .take(16)
        .map(|n| vec![n.clone()])
        .chain(std::iter::once(names.clone()))
        .collect();
    for request in requests {
        let Ok(order) = dep.resolve(&request) else {
            continue;
        };
        let position: HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, m)| (m.path.as_str(), i))
            .collect();
        assert_eq!(position.len(), order.len(), "duplicate in the load order");
        for (i, m) in order.iter().enumerate() {
            let entry = dep.get(&m.name).expect("resolved module is listed");
            for d in &entry.deps {
                assert!(
                    position.get(d.as_str()).is_some_and(|p| *p < i),
                    "{d} after {}",
                    m.path
                );
            }
        }
        for r in &request {
            assert!(order.iter().any(|m| &m.name == r));
        }
    }
});
