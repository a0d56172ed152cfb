//! Hostile manifests, validly signed (a compromised or buggy sealer) or not: each is refused
//! with the field named, and none makes the parser allocate more than a small multiple of its
//! own size (huge counts and sizes are checked before anything is allocated for them).

#[path = "common/alloc.rs"]
mod alloc;
mod common;

#[global_allocator]
static A: alloc::Counting = alloc::Counting;

use common::*;
use sealed_image::{Aead, Error, ImageKey, Opener, SignedManifest};
use serde_json::{Value, json};

fn refuse(f: &Fixture, what: &str, body: &Value, field: &str) {
    let bytes = sign_body(&f.signer, &serde_json::to_vec(body).unwrap());
    let (r, peak) = alloc::peak_during(|| {
        SignedManifest::decode(&bytes)
            .and_then(|s| s.verify(&f.vk))
            .map(|_| ())
    });
    match r {
        Err(Error::Malformed { field: got, why }) => {
            assert_eq!(got, field, "{what}: {why}");
            assert!(!why.is_empty());
        }
        other => panic!("{what}: expected Malformed({field}), got {other:?}"),
    }
    let bound = 64 * 1024 + 4 * bytes.len();
    assert!(
        peak < bound,
        "{what}: peak heap {peak} bytes for a {} byte manifest",
        bytes.len()
    );
}

#[test]
fn hostile_manifests_are_refused_without_big_allocations() {
    let f = sealed_multi(64, Aead::Aes256Gcm);
    let good = body_of(&f.manifest_file);
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    // A re-signed copy of the good body passes: the harness itself is sound.
    let ok = sign_body(&f.signer, &serde_json::to_vec(&good).unwrap());
    assert_eq!(
        SignedManifest::decode(&ok).unwrap().verify(&f.vk).unwrap(),
        f.manifest
    );

    refuse(
        &f,
        "huge chunk count",
        &with("chunk_count", json!(1u64 << 60)),
        "chunk_count",
    );
    refuse(
        &f,
        "max chunk count, short tag list",
        &with("chunk_count", json!(1u64 << 18)),
        "chunk_tags",
    );
    refuse(
        &f,
        "zero chunks",
        &with("chunk_count", json!(0)),
        "chunk_count",
    );
    refuse(
        &f,
        "count does not fit length",
        &with("chunk_count", json!(21)),
        "chunk_tags",
    );
    let mut b = with("plaintext_len", json!(u64::MAX));
    b["sections"] = json!([{"name": "kernel", "offset": 0, "len": u64::MAX}]);
    refuse(&f, "huge plaintext", &b, "chunk_count");
    refuse(
        &f,
        "chunk size 4 GiB",
        &with("chunk_size", json!(u32::MAX)),
        "chunk_size",
    );
    refuse(
        &f,
        "chunk size 0",
        &with("chunk_size", json!(0)),
        "chunk_size",
    );
    refuse(
        &f,
        "chunk size over 32 bits",
        &with("chunk_size", json!(1u64 << 40)),
        "body",
    );
    refuse(
        &f,
        "chunk size 32 MiB",
        &with("chunk_size", json!(32 << 20)),
        "chunk_size",
    );
    refuse(
        &f,
        "tags not base64",
        &with("chunk_tags", json!("!".repeat(472))),
        "chunk_tags",
    );
    refuse(
        &f,
        "key check not hex",
        &with("key_check", json!("zz")),
        "key_check",
    );
    refuse(&f, "unknown aead", &with("aead", json!("rot13")), "body");
    refuse(&f, "bad image id", &with("image_id", json!("0101")), "body");
    refuse(&f, "negative epoch", &with("key_epoch", json!(-1)), "body");
    let secs = |v: Value| with("sections", v);
    refuse(
        &f,
        "gap",
        &secs(
            json!([{"name":"kernel","offset":0,"len":300},{"name":"initramfs","offset":301,"len":1076}]),
        ),
        "sections",
    );
    refuse(
        &f,
        "overlap",
        &secs(
            json!([{"name":"kernel","offset":0,"len":300},{"name":"initramfs","offset":299,"len":1078}]),
        ),
        "sections",
    );
    refuse(
        &f,
        "duplicate name",
        &secs(
            json!([{"name":"kernel","offset":0,"len":300},{"name":"kernel","offset":300,"len":1077}]),
        ),
        "sections",
    );
    refuse(
        &f,
        "bad name",
        &secs(json!([{"name":"../etc","offset":0,"len":1377}])),
        "sections",
    );
    refuse(
        &f,
        "short cover",
        &secs(json!([{"name":"kernel","offset":0,"len":1376}])),
        "sections",
    );
    refuse(
        &f,
        "length overflow",
        &secs(
            json!([{"name":"a","offset":0,"len":u64::MAX},{"name":"b","offset":u64::MAX,"len":2}]),
        ),
        "sections",
    );
    let many: Vec<Value> = (0..17).map(|i| json!({"name": format!("s{i}"), "offset": i, "len": if i == 16 { 1361 } else { 1 }})).collect();
    refuse(
        &f,
        "too many sections",
        &secs(Value::Array(many)),
        "sections",
    );
    let lots: Vec<Value> = (0..20_000)
        .map(|i| json!({"name": "x", "offset": i, "len": 0}))
        .collect();
    refuse(&f, "20,000 sections", &secs(Value::Array(lots)), "sections");
    refuse(
        &f,
        "cmdline with newline",
        &with("cmdline", json!("a\nb")),
        "cmdline",
    );
    refuse(
        &f,
        "cmdline too long",
        &with("cmdline", json!("a".repeat(5000))),
        "cmdline",
    );
    let mut b = good.clone();
    b["extra_field"] = json!(1);
    refuse(&f, "unknown field", &b, "body");
    let mut b = good.clone();
    b.as_object_mut().unwrap().remove("key_check");
    refuse(&f, "missing field", &b, "body");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let bytes = sign_body(&f.signer, deep.as_bytes());
    let (r, peak) =
        alloc::peak_during(|| SignedManifest::decode(&bytes).and_then(|s| s.verify(&f.vk)));
    assert!(
        matches!(r, Err(Error::Malformed { field: "body", .. })),
        "{r:?}"
    );
    assert!(peak < 64 * 1024 + 4 * bytes.len());

    // Framing: a header claiming a 4 GiB body is refused from 14 bytes, allocating nothing big.
    let mut hdr = sealed_image::MANIFEST_MAGIC.to_vec();
    hdr.extend_from_slice(&1u16.to_be_bytes());
    hdr.extend_from_slice(&u32::MAX.to_be_bytes());
    let (r, peak) = alloc::peak_during(|| SignedManifest::decode(&hdr));
    assert!(matches!(
        r,
        Err(Error::Malformed {
            field: "body_len",
            ..
        })
    ));
    assert!(peak < 4096, "{peak}");
    let mut hdr = sealed_image::MANIFEST_MAGIC.to_vec();
    hdr.extend_from_slice(&1u16.to_be_bytes());
    hdr.extend_from_slice(&(8u32 << 20).to_be_bytes());
    let (r, peak) = alloc::peak_during(|| SignedManifest::decode(&hdr));
    assert!(matches!(r, Err(Error::Malformed { field: "body", .. })));
    assert!(peak < 4096, "{peak}");

    // A hand-built Manifest past the signature is validated again by the opener.
    let mut m = f.manifest.clone();
    m.chunk_count = u64::MAX;
    let (r, peak) =
        alloc::peak_during(|| Opener::new(&m, &ImageKey::from_bytes([42; 32])).map(|_| ()));
    assert!(
        matches!(
            r,
            Err(Error::Malformed {
                field: "chunk_count",
                ..
            })
        ),
        "{r:?}"
    );
    assert!(peak < 4096, "{peak}");
}
