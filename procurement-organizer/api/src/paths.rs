//! URL paths of the gateway's services. One place, so the agent and the gateway cannot drift.

/// Agent -> registration service (data-centre address, mutual TLS): [`crate::RegisterPeer`].
pub const PEERS: &str = "/v1/peers";
/// Agent -> key service (through the tunnel, mutual TLS): [`crate::KeyRequest`].
pub const KEYS: &str = "/v1/keys";
/// Image store (through the tunnel, plain HTTP): `/v1/images/<id>.manifest` and
/// `/v1/images/<id>.chunks` (Range requests for resume).
pub const IMAGES_PREFIX: &str = "/v1/images/";

/// The manifest of image `id`.
pub fn manifest(id: &crate::ImageRef) -> String {
    format!("{IMAGES_PREFIX}{id}.manifest")
}

/// The chunks of image `id`.
pub fn chunks(id: &crate::ImageRef) -> String {
    format!("{IMAGES_PREFIX}{id}.chunks")
}

/// Which file of an image a store path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFile {
    Manifest,
    Chunks,
}

impl ImageFile {
    /// The file name's suffix (`manifest`, `chunks`).
    pub fn suffix(&self) -> &'static str {
        match self {
            Self::Manifest => "manifest",
            Self::Chunks => "chunks",
        }
    }
}

/// Reads an image store path: `/v1/images/<32 lowercase hex>.manifest|.chunks` and nothing
/// else (no query, no other characters, so the result can only name a file of the store).
pub fn parse_image_path(path: &str) -> Option<(crate::ImageRef, ImageFile)> {
    let rest = path.strip_prefix(IMAGES_PREFIX)?;
    let (id, suffix) = rest.split_once('.')?;
    let file = match suffix {
        "manifest" => ImageFile::Manifest,
        "chunks" => ImageFile::Chunks,
        _ => return None,
    };
    Some((id.parse().ok()?, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImageRef;

    #[test]
    fn image_paths_round_trip_and_hostile_paths_name_nothing() {
        let id = ImageRef([0x5a; 16]);
        assert_eq!(
            parse_image_path(&manifest(&id)),
            Some((id, ImageFile::Manifest))
        );
        assert_eq!(
            parse_image_path(&chunks(&id)),
            Some((id, ImageFile::Chunks))
        );
        let hex = "5a".repeat(16);
        for bad in [
            "/v1/images/".to_string(),
            format!("/v1/images/{hex}"),
            format!("/v1/images/{hex}.key"),
            format!("/v1/images/{hex}.manifest.bak"),
            format!("/v1/images/{hex}.chunks?x=1"),
            format!("/v1/images/../{hex}.chunks"),
            format!("/v1/images/{}.chunks", hex.to_uppercase()),
            format!("/v1/images/%2e%2e/{hex}.chunks"),
            format!("/v1/images//{hex}.chunks"),
            format!("/v1/images/{hex}/.chunks"),
            format!("/v2/images/{hex}.chunks"),
            format!("v1/images/{hex}.chunks"),
        ] {
            assert_eq!(parse_image_path(&bad), None, "{bad}");
        }
    }
}
