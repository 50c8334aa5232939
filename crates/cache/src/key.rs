//! Step keys.

use kiln_oci::Digest;

/// Appends `bytes` behind its length, so that no two different sequences of
/// items encode to the same bytes ("ab" + "c" versus "a" + "bc").
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Builds a step's cache key: the digest of an unambiguous encoding of the
/// step kind, its parents' keys and named fields, in the order they are
/// added.
///
/// Order matters, so the engine must add the same fields in the same order
/// for the same kind of step (e.g. the build args it uses sorted by name).
/// Every item is tagged and length-prefixed, so a parent can never be taken
/// for a field, and moving bytes between a field's name and value, or between
/// two fields, changes the key.
///
/// The encoding, which must never change without changing the version tag
/// (a test pins a key): `kiln-cache-key/v1\0`, then the kind, then per
/// parent `P` and its 32 digest bytes, per field `F`, the name and the
/// value, where each string is its length as a big-endian u64 followed by
/// its bytes. The key is the sha256 of that.
///
/// ```
/// use kiln_cache::KeyBuilder;
///
/// let base = KeyBuilder::new("from").field("image", "sha256:…").finish();
/// let a = KeyBuilder::new("run").parent(&base).field("cmd", "ab").field("arg", "c").finish();
/// let b = KeyBuilder::new("run").parent(&base).field("cmd", "a").field("arg", "bc").finish();
/// assert_ne!(a, b);
/// ```
#[derive(Clone, Debug)]
pub struct KeyBuilder {
    encoded: Vec<u8>,
}

impl KeyBuilder {
    /// Starts a key for a step of `kind` (e.g. "copy", "env").
    pub fn new(kind: &str) -> KeyBuilder {
        let mut encoded = b"kiln-cache-key/v1\0".to_vec();
        put_bytes(&mut encoded, kind.as_bytes());
        KeyBuilder { encoded }
    }

    /// Adds the key of a step this one builds on (the previous step, or the
    /// last step of a stage it copies from).
    pub fn parent(mut self, key: &Digest) -> KeyBuilder {
        self.encoded.push(b'P');
        self.encoded.extend_from_slice(key.bytes());
        self
    }

    /// Adds a named value.
    pub fn field(mut self, name: &str, value: impl AsRef<[u8]>) -> KeyBuilder {
        self.encoded.push(b'F');
        put_bytes(&mut self.encoded, name.as_bytes());
        put_bytes(&mut self.encoded, value.as_ref());
        self
    }

    /// The key.
    pub fn finish(self) -> Digest {
        Digest::of(&self.encoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_and_parents_are_part_of_the_key() {
        let p = Digest::of(b"parent");
        let q = Digest::of(b"other");
        let base = || KeyBuilder::new("copy").field("src", "a");
        assert_ne!(
            KeyBuilder::new("add").finish(),
            KeyBuilder::new("copy").finish()
        );
        assert_ne!(base().parent(&p).finish(), base().parent(&q).finish());
        assert_ne!(base().parent(&p).finish(), base().finish());
        assert_eq!(base().parent(&p).finish(), base().parent(&p).finish());
    }
}
