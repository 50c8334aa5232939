//! Step keys: pinned, unambiguous, order-sensitive.

use kiln_cache::KeyBuilder;
use kiln_oci::Digest;

fn sample() -> Digest {
    let base = KeyBuilder::new("from")
        .field(
            "image",
            "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        )
        .finish();
    KeyBuilder::new("run")
        .parent(&base)
        .field("cmd", "make install")
        .field("arg:VERSION", "1.2")
        .field("platform", "linux/amd64")
        .finish()
}

/// A changed encoding silently invalidates (or worse, aliases) every cache
/// in the field; this literal makes such a change a deliberate act that
/// also bumps the version tag.
#[test]
fn key_derivation_is_pinned() {
    assert_eq!(
        sample().to_string(),
        "sha256:513066d486a57546fc328eed0576ea6be51b2d5e219ade1fc233af5324d76bb8"
    );
}

#[test]
fn keys_are_deterministic() {
    assert_eq!(sample(), sample());
}

#[test]
fn bytes_cannot_move_between_fields() {
    let k = |a: &str, b: &str| KeyBuilder::new("run").field("x", a).field("y", b).finish();
    assert_ne!(k("ab", "c"), k("a", "bc"));
    // Between a field's name and its value.
    let f = |name: &str, value: &str| KeyBuilder::new("run").field(name, value).finish();
    assert_ne!(f("ab", "c"), f("a", "bc"));
    // Between the kind and the first field.
    assert_ne!(
        KeyBuilder::new("ru").field("nx", "1").finish(),
        KeyBuilder::new("run").field("x", "1").finish()
    );
}

#[test]
fn a_parent_is_not_a_field() {
    let p = Digest::of(b"parent");
    let as_parent = KeyBuilder::new("copy").parent(&p).finish();
    let as_field = KeyBuilder::new("copy").field("", p.bytes()).finish();
    assert_ne!(as_parent, as_field);
}

#[test]
fn field_order_and_count_matter() {
    let ab = KeyBuilder::new("env")
        .field("a", "1")
        .field("b", "2")
        .finish();
    let ba = KeyBuilder::new("env")
        .field("b", "2")
        .field("a", "1")
        .finish();
    assert_ne!(ab, ba);
    let empty = KeyBuilder::new("env").finish();
    let one_empty = KeyBuilder::new("env").field("", "").finish();
    assert_ne!(empty, one_empty);
}
