//! Test harness for kiln's registry tests: everything here is real.
//!
//! * [`Registry`]: Debian's `docker-registry` (distribution v2) on a free
//!   port of 127.0.0.1, storage in a tempdir, killed on drop; plain HTTP,
//!   TLS with a CA made here, basic auth (bcrypt htpasswd) or token auth.
//! * [`TokenIssuer`]: a small token server signing ES256 JWTs with an `x5c`
//!   header whose certificate is the registry's `rootcertbundle`.
//! * [`Proxy`]: a TCP proxy in front of a registry that can corrupt a blob,
//!   serve other bytes under its digest, drop a connection part way
//!   through one or before answering, ignore `Range`, stall before or
//!   inside a body, trickle a download or an upload, rewrite a response
//!   header, or answer with an error status.
//! * [`FileServer`]: plain HTTP files outside any registry, for the
//!   `urls` of foreign layers.
//! * [`base_images`]: OCI layouts built by `scripts/make-base-images`;
//!   [`debian_image`]: a Debian 12 image it builds with mmdebstrap;
//!   [`busybox_multiarch`]: busybox for two architectures, in one index.
//! * [`Binfmt`]: qemu's binfmt_misc handler for an architecture, registered
//!   for a test and unregistered after.
//! * [`GitServer`]: a git repository served over `git://` by `git-daemon`.
#![deny(missing_docs)]

mod binfmt;
mod files;
mod git;
mod images;
mod proxy;
mod registry;
mod token;

pub use binfmt::Binfmt;
pub use files::FileServer;
pub use git::{git, GitServer};
pub use images::{
    base_images, busybox_multiarch, debian_image, windows_base, BaseImages, DebianImage,
};
pub use proxy::{Fault, Proxy};
pub use registry::{Auth, Registry, RegistryOptions};
pub use token::TokenIssuer;

use std::net::TcpListener;

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}

/// `len` bytes no compressor can shrink (xorshift64, the same every
/// call), for layers whose compressed size must stay their size.
pub fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}
