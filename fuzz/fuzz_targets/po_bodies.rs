//! Every body of the agent <-> tenant gateway contract (`po-api`) through `po_api::parse_body`,
//! and the image store's path parser: never a panic, errors say what is wrong, whatever parses
//! serializes and parses back to the same value, and a parsed store path is one of the two
//! file names of a valid image id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use po_api::{
    ErrorBody, KeyAnswer, KeyRequest, PeerRegistered, RegisterPeer, parse_body, parse_image_path,
    paths,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn check<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(data: &[u8]) {
    match parse_body::<T>(data) {
        Ok(v) => {
            let again = serde_json::to_vec(&v).expect("serialize");
            let back: T = parse_body(&again).expect("round trip");
            assert_eq!(v, back);
        }
        Err(e) => assert!(!e.message.is_empty()),
    }
}

fuzz_target!(|data: &[u8]| {
    check::<RegisterPeer>(data);
    check::<PeerRegistered>(data);
    check::<KeyRequest>(data);
    check::<KeyAnswer>(data);
    check::<ErrorBody>(data);
    if let Ok(path) = std::str::from_utf8(data)
        && let Some((id, file)) = parse_image_path(path)
    {
        let again = match file {
            po_api::ImageFile::Manifest => paths::manifest(&id),
            po_api::ImageFile::Chunks => paths::chunks(&id),
        };
        assert_eq!(again, path);
    }
});
