//! RUN for another architecture through qemu-user-static's binfmt_misc
//! handler (registered for this test binary, put back after), alone and
//! with `--platform a,b` building an index. One test: the handler is
//! global to the machine.

mod build_support;

use build_support::*;
use kiln_backend::NamedContext;
use kiln_frontend::stages::Platform;
use kiln_testsupport::{busybox_multiarch, Binfmt};

#[test]
fn run_steps_for_another_architecture_run_under_qemu() {
    let host_arm = cfg!(target_arch = "aarch64");
    let (other, qemu, uname) = if host_arm {
        ("linux/amd64", "x86_64", "x86_64")
    } else {
        ("linux/arm64", "aarch64", "aarch64")
    };
    let _binfmt = Binfmt::qemu(qemu).unwrap_or_else(|e| panic!("{e}"));
    let env = Env::new();
    let mut req = env.request("FROM bb\nRUN uname -m > /arch\n");
    req.source_date_epoch = Some(1_700_000_000);
    req.build_contexts.insert(
        "bb".into(),
        NamedContext::OciLayout {
            path: busybox_multiarch().clone(),
            reference: Some("latest".into()),
        },
    );
    req.platform = Some(Platform::parse(other).unwrap());
    let built = env.run(&req).unwrap_or_else(|e| panic!("{e}"));
    let layers = env.layers(&built);
    let arch = layers[1]
        .iter()
        .find(|e| e.line.starts_with("arch "))
        .unwrap();
    assert_eq!(arch.data, format!("{uname}\n"));
    let config = env.config(&built);
    assert_eq!(
        config["architecture"],
        if host_arm { "amd64" } else { "arm64" }
    );

    // Both at once: an index whose images each ran their own busybox.
    let host = if host_arm {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    req.platform = None;
    req.platforms = vec![
        Platform::parse(host).unwrap(),
        Platform::parse(other).unwrap(),
    ];
    let index = env.run(&req).unwrap_or_else(|e| panic!("{e}"));
    assert!(index.is_index);
    let index_json = env.json(&index.manifest);
    let mut seen = Vec::new();
    for m in index_json["manifests"].as_array().unwrap() {
        let manifest: kiln_store::Descriptor = serde_json::from_value(m.clone()).unwrap();
        let manifest = env.json(&manifest);
        let last = manifest["layers"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        let layer: kiln_store::Descriptor = serde_json::from_value(last).unwrap();
        let entries = read_layer(&env.store().blob_path(&layer.digest));
        let arch = entries
            .iter()
            .find(|e| e.line.starts_with("arch "))
            .unwrap();
        seen.push((
            m["platform"]["architecture"].as_str().unwrap().to_string(),
            arch.data.clone(),
        ));
    }
    let want_host = if host_arm { "aarch64\n" } else { "x86_64\n" };
    let host_arch = if host_arm { "arm64" } else { "amd64" };
    let other_arch = if host_arm { "amd64" } else { "arm64" };
    assert_eq!(
        seen,
        [
            (host_arch.to_string(), want_host.to_string()),
            (other_arch.to_string(), format!("{uname}\n")),
        ]
    );
}
