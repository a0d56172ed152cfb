//! The transfer phase against a real HTTP store on loopback (the tunnel replaced by a way that
//! is always up): a clean transfer, a resume after a dropped connection, and every refusal of
//! issue 4 on the agent's side, each with a clear error and nothing of the image kept.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddrV4, TcpListener};
use std::sync::{Arc, Mutex};

use ring::rand::SystemRandom;
use sealed_image::{ImageId, ImageKey, KeyEpoch, SealParams, Sealer, SigningKey};

use super::*;

const CHUNK: u32 = 4096;
const MARKER: &[u8] = b"AGENT-TRANSFER-TEST-MARKER";

struct Sealed {
    id: ImageRef,
    key: [u8; 32],
    signer: SigningKey,
    manifest: Vec<u8>,
    chunks: Vec<u8>,
    plaintext: Vec<u8>,
}

fn plaintext() -> Vec<u8> {
    let mut p: Vec<u8> = (0..CHUNK as usize * 6 + 777)
        .map(|i| (i % 251) as u8)
        .collect();
    for at in [0, 5000, 20_000] {
        p[at..at + MARKER.len()].copy_from_slice(MARKER);
    }
    p
}

fn seal_with(id: [u8; 16], epoch: u32, key: [u8; 32], signer: SigningKey, plain: &[u8]) -> Sealed {
    let mut params = SealParams::new(ImageId::from_bytes(id), KeyEpoch(epoch), 1);
    params.chunk_size = CHUNK;
    let mut chunks = Vec::new();
    let mut sealer = Sealer::new(
        &params,
        "console=ttyS0",
        &ImageKey::from_bytes(key),
        &mut chunks,
    )
    .unwrap();
    sealer.start_section("kernel").unwrap();
    sealer.write_all(plain).unwrap();
    let manifest = sealer.finish(&signer).unwrap().encode();
    Sealed {
        id: ImageRef(id),
        key,
        signer,
        manifest,
        chunks,
        plaintext: plain.to_vec(),
    }
}

fn signer() -> SigningKey {
    SigningKey::generate(&SystemRandom::new()).unwrap()
}

fn sealed() -> Sealed {
    seal_with([7; 16], 1, [9; 32], signer(), &plaintext())
}

/// What the store does.
#[derive(Default)]
struct StoreState {
    files: HashMap<String, Vec<u8>>,
    /// Close the connection after this many body bytes of the next chunks answer (once).
    cut_after: Option<usize>,
    requests: Vec<(String, Option<String>)>,
}

fn serve(state: Arc<Mutex<StoreState>>) -> SocketAddrV4 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = match listener.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("{other}"),
    };
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            let mut range = None;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.strip_prefix("Range: ") {
                    range = Some(v.trim().to_string());
                }
            }
            let mut st = state.lock().unwrap();
            st.requests.push((path.clone(), range.clone()));
            let Some(file) = st.files.get(&path).cloned() else {
                let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                continue;
            };
            let start: usize = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .map_or(0, |n| n.parse().unwrap());
            let body = &file[start.min(file.len())..];
            let head = if range.is_some() {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\n\r\n",
                    file.len() - 1,
                    file.len(),
                    body.len()
                )
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
            };
            let cut = if path.ends_with(".chunks") {
                st.cut_after.take()
            } else {
                None
            };
            drop(st);
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body[..cut.unwrap_or(body.len()).min(body.len())]);
        }
    });
    addr
}

struct Loopback {
    up: bool,
    restarts: Cell<u32>,
}

impl Way for Loopback {
    fn ensure_up(&self, _timeout: Duration) -> anyhow::Result<Duration> {
        if self.up {
            Ok(Duration::ZERO)
        } else {
            anyhow::bail!("no handshake with the gateway")
        }
    }
    fn restart(&self) -> anyhow::Result<()> {
        self.restarts.set(self.restarts.get() + 1);
        Ok(())
    }
    fn device(&self) -> Option<&str> {
        None
    }
}

struct World {
    state: Arc<Mutex<StoreState>>,
    store: TunnelService,
    dir: tempfile::TempDir,
}

fn world(s: &Sealed, manifest: &[u8], chunks: &[u8]) -> World {
    let mut st = StoreState::default();
    st.files
        .insert(po_api::paths::manifest(&s.id), manifest.to_vec());
    st.files
        .insert(po_api::paths::chunks(&s.id), chunks.to_vec());
    let state = Arc::new(Mutex::new(st));
    let addr = serve(state.clone());
    World {
        state,
        store: TunnelService { addr },
        dir: tempfile::tempdir().unwrap(),
    }
}

fn fetch(
    w: &World,
    s: &Sealed,
    way: &Loopback,
    key: [u8; 32],
    asked: &Cell<Option<KeyEpoch>>,
) -> Result<Fetched, Failure> {
    let fetch_key = |_image, epoch| {
        asked.set(Some(epoch));
        Ok(ImageKey::from_bytes(key))
    };
    let src = Source {
        way,
        store: w.store,
        signing_key: s.signer.verifying_key(),
        fetch_key: &fetch_key,
    };
    run(&src, s.id, w.dir.path(), &mut Resume::default())
}

fn up() -> Loopback {
    Loopback {
        up: true,
        restarts: Cell::new(0),
    }
}

/// A refusal: fatal, the error says `why`, and nothing of the image is left in the folder.
fn refused(s: &Sealed, manifest: &[u8], chunks: &[u8], key: [u8; 32], why: &str) {
    let w = world(s, manifest, chunks);
    let f = fetch(&w, s, &up(), key, &Cell::new(None)).unwrap_err();
    let text = format!("{:#}", f.error);
    eprintln!("refused ({why}): {text}");
    assert_eq!(f.outcome, Outcome::Fatal, "{text}");
    assert!(text.contains(why), "expected {why:?} in: {text}");
    let left: Vec<_> = std::fs::read_dir(w.dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left after a refusal: {left:?}");
}

#[test]
fn a_clean_transfer_keeps_exactly_the_sealed_ciphertext() {
    let s = sealed();
    let w = world(&s, &s.manifest, &s.chunks);
    let asked = Cell::new(None);
    let f = fetch(&w, &s, &up(), s.key, &asked).unwrap();
    assert_eq!(
        asked.get(),
        Some(KeyEpoch(1)),
        "the key asked for the manifest's epoch"
    );
    assert_eq!((f.chunks, f.resumes), (7, 0));
    assert_eq!(std::fs::read(&f.chunks_file).unwrap(), s.chunks);
    assert_eq!(std::fs::read(&f.manifest).unwrap(), s.manifest);
    let stored = std::fs::read(&f.chunks_file).unwrap();
    assert!(
        !stored.windows(MARKER.len()).any(|w| w == MARKER),
        "plaintext on the host"
    );
    assert_ne!(stored, s.plaintext);
}

#[test]
fn a_dropped_connection_resumes_from_the_first_unverified_chunk() {
    let s = sealed();
    let w = world(&s, &s.manifest, &s.chunks);
    let stride = (CHUNK + 16) as usize;
    w.state.lock().unwrap().cut_after = Some(stride * 2 + 1000);
    let way = up();
    let f = fetch(&w, &s, &way, s.key, &Cell::new(None)).unwrap();
    assert_eq!(f.resumes, 1);
    assert_eq!(way.restarts.get(), 1, "a fresh session before the resume");
    assert_eq!(std::fs::read(&f.chunks_file).unwrap(), s.chunks);
    let reqs = &w.state.lock().unwrap().requests;
    let ranges: Vec<_> = reqs
        .iter()
        .filter(|(p, _)| p.ends_with(".chunks"))
        .map(|(_, r)| r.clone())
        .collect();
    assert_eq!(ranges, vec![None, Some(format!("bytes={}-", stride * 2))]);
}

#[test]
fn nothing_is_asked_for_without_the_tunnel() {
    let s = sealed();
    let w = world(&s, &s.manifest, &s.chunks);
    let down = Loopback {
        up: false,
        restarts: Cell::new(0),
    };
    let f = fetch(&w, &s, &down, s.key, &Cell::new(None)).unwrap_err();
    assert_eq!(f.outcome, Outcome::Transient);
    assert!(format!("{:#}", f.error).contains("tunnel is not up"));
    assert!(w.state.lock().unwrap().requests.is_empty());
}

#[test]
fn tampered_truncated_extended_and_reordered_chunks_are_refused() {
    let s = sealed();
    let stride = (CHUNK + 16) as usize;
    let mut tampered = s.chunks.clone();
    tampered[stride * 3 + 10] ^= 1;
    refused(&s, &s.manifest, &tampered, s.key, "chunk 3");
    let truncated = &s.chunks[..s.chunks.len() - 100];
    refused(&s, &s.manifest, truncated, s.key, "truncated");
    let mut longer = s.chunks.clone();
    longer.extend_from_slice(&[0; 10]);
    refused(&s, &s.manifest, &longer, s.key, "trailing data");
    let mut swapped = s.chunks.clone();
    let (a, b) = swapped.split_at_mut(stride * 2);
    a[stride..].swap_with_slice(&mut b[..stride]);
    refused(&s, &s.manifest, &swapped, s.key, "reordered");
}

#[test]
fn another_image_another_epoch_and_bad_signatures_are_refused() {
    let s = sealed();
    // The manifest of another image served under this image's name.
    let other = seal_with(
        [8; 16],
        1,
        s.key,
        SigningKey::from_pkcs8_der(s.signer.pkcs8_der()).unwrap(),
        &s.plaintext,
    );
    refused(
        &s,
        &other.manifest,
        &other.chunks,
        s.key,
        "manifest is for image",
    );
    // The key of another epoch (a re-seal under a new key) for this manifest.
    refused(
        &s,
        &s.manifest,
        &s.chunks,
        [10; 32],
        "image key does not match",
    );
    // The same image re-sealed under epoch 2: its manifest with the epoch-1 chunks.
    let resealed = seal_with(
        [7; 16],
        2,
        [10; 32],
        SigningKey::from_pkcs8_der(s.signer.pkcs8_der()).unwrap(),
        &s.plaintext,
    );
    refused(&s, &resealed.manifest, &s.chunks, [10; 32], "chunk 0");
    // Signed by someone else, or with the signature damaged.
    let forged = seal_with([7; 16], 1, s.key, signer(), &s.plaintext);
    refused(&s, &forged.manifest, &forged.chunks, s.key, "signature");
    let mut unsigned = s.manifest.clone();
    let n = unsigned.len();
    unsigned[n - 5] ^= 0xff;
    refused(&s, &unsigned, &s.chunks, s.key, "signature does not verify");
}
