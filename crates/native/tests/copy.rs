//! COPY semantics against real directories and image file systems: the
//! exact layer entries each rule produces.

mod copy_support;

use copy_support::*;
use kiln_frontend::dockerignore::Matcher;
use kiln_frontend::instructions::{Heredoc, Source};
use kiln_native::imagefs::ImageFs;
use kiln_oci::LayerEntry;

/// A context with files of known modes and times, some owned by 1000.
fn sample_context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    file(root, "a.txt", "A", 0o640, 1_000);
    file(root, "b.md", "B", 0o644, 1_001);
    mkdir(root, "dir", 0o750, 2_000);
    file(root, "dir/b.txt", "DB", 0o600, 2_001);
    mkdir(root, "dir/sub", 0o700, 2_002);
    file(root, "dir/sub/c.txt", "DSC", 0o644, 2_003);
    symlink(root, "dir/link", "b.txt");
    hardlink(root, "dir/b.txt", "dir/h");
    set_mtime(&root.join("dir/sub"), 2_002);
    set_mtime(&root.join("dir"), 2_000);
    chown_tree(root, 1000, 1000);
    dir
}

#[test]
fn files_and_directory_contents_go_into_a_new_directory() {
    let context = sample_context();
    let t = Harness::new(context.path());
    let out = t.copy(&cp(&["a.txt", "dir"], "/app/")).unwrap();
    assert_eq!(
        list(&out.entries),
        [
            "app dir 755 0:0 @1700000000",
            "app/a.txt file(A) 640 0:0 @1000",
            "app/b.txt file(DB) 600 0:0 @2001",
            "app/h hardlink(app/b.txt) 600 0:0 @2001",
            "app/link symlink(b.txt) 777 0:0",
            "app/sub dir 700 0:0 @2002",
            "app/sub/c.txt file(DSC) 644 0:0 @2003",
        ]
    );
}

#[test]
fn a_file_destination_without_slash_is_the_file_itself() {
    let context = sample_context();
    let t = Harness::new(context.path());
    let out = t.copy(&cp(&["a.txt"], "/x/new.txt")).unwrap();
    assert_eq!(
        list(&out.entries),
        [
            "x dir 755 0:0 @1700000000",
            "x/new.txt file(A) 640 0:0 @1000"
        ]
    );
    // A directory source creates the destination with mkdir's metadata,
    // not the source directory's (fsutil's MkdirAll).
    let out = t.copy(&cp(&["dir/sub"], "newdir")).unwrap();
    assert_eq!(
        list(&out.entries),
        [
            "newdir dir 755 0:0 @1700000000",
            "newdir/c.txt file(DSC) 644 0:0 @2003"
        ]
    );
}

#[test]
fn destinations_are_relative_to_workdir() {
    let context = sample_context();
    let mut t = Harness::new(context.path());
    t.workdir = "/srv/app".into();
    let out = t.copy(&cp(&["a.txt"], ".")).unwrap();
    assert_eq!(
        list(&out.entries),
        [
            "srv dir 755 0:0 @1700000000",
            "srv/app dir 755 0:0 @1700000000",
            "srv/app/a.txt file(A) 640 0:0 @1000"
        ]
    );
    let out = t.copy(&cp(&["a.txt"], "../up.txt")).unwrap();
    assert_eq!(
        list(&out.entries),
        [
            "srv dir 755 0:0 @1700000000",
            "srv/up.txt file(A) 640 0:0 @1000"
        ]
    );
}

#[test]
fn wildcards_match_per_component_and_may_match_nothing() {
    let context = sample_context();
    let t = Harness::new(context.path());
    let out = t.copy(&cp(&["*.txt", "d?r/*.txt"], "/out/")).unwrap();
    assert_eq!(
        list(&out.entries),
        [
            "out dir 755 0:0 @1700000000",
            "out/a.txt file(A) 640 0:0 @1000",
            "out/b.txt file(DB) 600 0:0 @2001",
        ]
    );
    let out = t.copy(&cp(&["[ab].*"], "/out/")).unwrap();
    assert_eq!(
        list(&out.entries),
        [
            "out dir 755 0:0 @1700000000",
            "out/a.txt file(A) 640 0:0 @1000",
            "out/b.md file(B) 644 0:0 @1001",
        ]
    );
    // BuildKit: a wildcard that matches nothing copies nothing.
    let out = t.copy(&cp(&["*.none"], "/out/")).unwrap();
    assert!(out.entries.is_empty());
    // ...but the directory before the wildcard must exist.
    assert_eq!(
        t.copy(&cp(&["missing/*.txt"], "/out/")).unwrap_err().to_string(),
        "COPY failed: file not found in build context or excluded by .dockerignore: stat missing: file does not exist"
    );
}

#[test]
fn missing_and_escaping_sources_are_errors() {
    let context = sample_context();
    symlink(context.path(), "out-abs", "/etc/passwd");
    symlink(context.path(), "out-rel", "../../x");
    let t = Harness::new(context.path());
    assert_eq!(
        t.copy(&cp(&["missing.txt"], "/")).unwrap_err().to_string(),
        "COPY failed: file not found in build context or excluded by .dockerignore: stat missing.txt: file does not exist"
    );
    assert_eq!(
        t.copy(&cp(&["../x"], "/")).unwrap_err().to_string(),
        "COPY failed: source path \"../x\" escapes the build context: sources are relative to the context root, so `..` cannot leave it"
    );
    for link in ["out-abs", "out-rel"] {
        assert_eq!(
            t.copy(&cp(&[link], "/")).unwrap_err().to_string(),
            format!("COPY failed: {link:?} resolves through a symlink that points outside the build context; only files inside the context can be copied")
        );
    }
    // A leading slash and `..` inside the context are fine.
    let out = t.copy(&cp(&["/dir/../a.txt"], "/")).unwrap();
    assert_eq!(list(&out.entries), ["a.txt file(A) 640 0:0 @1000"]);
}

#[test]
fn a_source_symlink_is_followed_and_named_after_the_link() {
    let context = sample_context();
    symlink(context.path(), "alias", "dir/b.txt");
    symlink(context.path(), "dirlink", "dir/sub");
    let t = Harness::new(context.path());
    let out = t.copy(&cp(&["alias", "dirlink"], "/out/")).unwrap();
    assert_eq!(
        list(&out.entries),
        [
            "out dir 755 0:0 @1700000000",
            "out/alias file(DB) 600 0:0 @2001",
            "out/c.txt file(DSC) 644 0:0 @2003",
        ]
    );
}

#[test]
fn dockerignore_hides_files_and_exclude_filters_them() {
    let context = sample_context();
    let mut t = Harness::new(context.path());
    t.ignore = Matcher::parse(".dockerignore", b"a.txt\ndir/sub\n").unwrap();
    assert_eq!(
        t.copy(&cp(&["a.txt"], "/")).unwrap_err().to_string(),
        "COPY failed: file not found in build context or excluded by .dockerignore: stat a.txt: file does not exist"
    );
    // A directory a wildcard matches has its contents copied, as any
    // directory source does.
    let out = t.copy(&cp(&["*"], "/out/")).unwrap();
    assert_eq!(
        list(&out.entries),
        [
            "out dir 755 0:0 @1700000000",
            "out/b.md file(B) 644 0:0 @1001",
            "out/b.txt file(DB) 600 0:0 @2001",
            "out/h hardlink(out/b.txt) 600 0:0 @2001",
            "out/link symlink(b.txt) 777 0:0",
        ]
    );

    let t = Harness::new(context.path());
    let mut instr = cp(&["dir", "*.md", "a.txt"], "/out/");
    instr.excludes = vec!["*.md".into(), "sub".into(), "h".into()];
    let out = t.copy(&instr).unwrap();
    assert_eq!(
        list(&out.entries),
        [
            "out dir 755 0:0 @1700000000",
            "out/a.txt file(A) 640 0:0 @1000",
            "out/b.txt file(DB) 600 0:0 @2001",
            "out/link symlink(b.txt) 777 0:0",
        ]
    );
}

#[test]
fn an_exception_re_includes_files_inside_an_excluded_directory() {
    // fsutil walks an excluded directory when an exclude pattern has an
    // exception, and makes the directory (with its own metadata) only as
    // the parent of what the exception keeps.
    let context = sample_context();
    let t = Harness::new(context.path());
    let mut instr = cp(&["."], "/out/");
    instr.excludes = vec!["dir".into(), "!dir/sub/c.txt".into(), "*.md".into()];
    let out = t.copy(&instr).unwrap();
    assert_eq!(
        list(&out.entries),
        [
            "out dir 755 0:0 @1700000000",
            "out/a.txt file(A) 640 0:0 @1000",
            "out/dir dir 750 0:0 @2000",
            "out/dir/sub dir 700 0:0 @2002",
            "out/dir/sub/c.txt file(DSC) 644 0:0 @2003",
        ]
    );
    // Without an exception nothing below is looked at.
    instr.excludes = vec!["dir".into()];
    let out = t.copy(&instr).unwrap();
    assert!(!list(&out.entries).iter().any(|l| l.starts_with("out/dir")));
}

#[test]
fn parents_keep_the_source_path() {
    let context = sample_context();
    let t = Harness::new(context.path());
    let mut instr = cp(&["dir/sub/c.txt", "a.txt", "dir/./sub/*.txt"], "/p/");
    instr.parents = true;
    let out = t.copy(&instr).unwrap();
    assert_eq!(
        list(&out.entries),
        [
            "p dir 755 0:0 @1700000000",
            "p/a.txt file(A) 640 0:0 @1000",
            "p/dir dir 750 0:0 @2000",
            "p/dir/sub dir 700 0:0 @2002",
            "p/dir/sub/c.txt file(DSC) 644 0:0 @2003",
            "p/sub dir 700 0:0 @2002",
            "p/sub/c.txt file(DSC) 644 0:0 @2003",
        ]
    );
}

#[test]
/// BuildKit creates missing parents with fsutil's `MkdirAll(dst, perm,
/// chown)`, `perm` being an octal `--chmod` (its testCopyChmod: `COPY
/// --chmod=777 foo /parent/foo` makes `/parent` 0777), else 0755.
fn an_octal_chmod_reaches_created_parents_and_a_symbolic_one_does_not() {
    let context = sample_context();
    let t = Harness::new(context.path());
    let mut instr = cp(&["dir/sub", "a.txt"], "/m/");
    instr.chmod = Some("750".into());
    assert_eq!(
        list(&t.copy(&instr).unwrap().entries),
        [
            "m dir 750 0:0 @1700000000",
            "m/a.txt file(A) 750 0:0 @1000",
            "m/c.txt file(DSC) 750 0:0 @2003",
        ]
    );
    let mut instr = cp(&["a.txt"], "/parent/sub/foo");
    instr.chmod = Some("0770".into());
    assert_eq!(
        list(&t.copy(&instr).unwrap().entries),
        [
            "parent dir 770 0:0 @1700000000",
            "parent/sub dir 770 0:0 @1700000000",
            "parent/sub/foo file(A) 770 0:0 @1000",
        ]
    );
    // A trailing `/` makes BuildKit create the destination first (0755
    // for a symbolic mode), so the directory copy finds it existing and
    // leaves its mode alone.
    let mut instr = cp(&["dir"], "/m/");
    instr.chmod = Some("u+x,go-rwx".into());
    assert_eq!(
        list(&t.copy(&instr).unwrap().entries),
        [
            "m dir 755 0:0 @1700000000",
            "m/b.txt file(DB) 700 0:0 @2001",
            "m/h hardlink(m/b.txt) 700 0:0 @2001",
            "m/link symlink(b.txt) 777 0:0",
            "m/sub dir 700 0:0 @2002",
            "m/sub/c.txt file(DSC) 700 0:0 @2003",
        ]
    );
    instr.chmod = Some("u+q".into());
    assert_eq!(
        t.copy(&instr).unwrap_err().to_string(),
        "COPY failed: invalid chmod parameter: u+q. it should be octal string and between 0 and 07777, or a symbolic mode like u+x"
    );
}

/// A base image with users, an existing `/etc` and a symlinked `/app`.
fn base_image(store: &kiln_store::Store) -> ImageFs {
    let l = layer(
        store,
        vec![
            LayerEntry::dir("etc").with_mode(0o711).with_mtime(5),
            LayerEntry::file(
                "etc/passwd",
                "root:x:0:0::/root:/bin/sh\napp:x:1001:1002::/home/app:/bin/sh\n",
            ),
            LayerEntry::file("etc/group", "root:x:0:\nstaff:x:50:\n"),
            LayerEntry::dir("srv")
                .with_mode(0o700)
                .with_owner(7, 7)
                .with_mtime(6),
            LayerEntry::dir("srv/app").with_mode(0o775).with_mtime(7),
            LayerEntry::dir("srv/app/c.txt"),
            LayerEntry::symlink("app", "/srv/app"),
            LayerEntry::file("etc/hosts", "h"),
        ],
    );
    ImageFs::open(store, &[l]).unwrap()
}

#[test]
fn destination_symlinks_existing_dirs_and_chown_names_come_from_the_stage() {
    let context = sample_context();
    let (_s, store) = new_store();
    let mut t = Harness::new(context.path());
    t.dest_fs = base_image(&store);
    // /app -> /srv/app: the file lands in /srv/app, whose parents are in
    // the layer with the metadata they have.
    let mut instr = cp(&["a.txt"], "/app/");
    instr.chown = Some("app:staff".into());
    assert_eq!(
        list(&t.copy(&instr).unwrap().entries),
        [
            "srv dir 700 7:7 @6",
            "srv/app dir 775 0:0 @7",
            "srv/app/a.txt file(A) 640 1001:50 @1000",
        ]
    );
    // An existing directory without a slash gets the file inside.
    let mut instr = cp(&["a.txt"], "/etc");
    instr.chown = Some("app".into());
    assert_eq!(
        list(&t.copy(&instr).unwrap().entries),
        [
            "etc dir 711 0:0 @5",
            "etc/a.txt file(A) 640 1001:1002 @1000"
        ]
    );
    // A file cannot replace a directory, nor go below a file.
    assert_eq!(
        t.copy(&cp(&["dir/sub/c.txt"], "/srv/app/"))
            .unwrap_err()
            .to_string(),
        "COPY failed: cannot replace the directory /srv/app/c.txt with a file"
    );
    assert_eq!(
        t.copy(&cp(&["a.txt"], "/etc/hosts/x"))
            .unwrap_err()
            .to_string(),
        "COPY failed: cannot copy into /etc/hosts: it exists and is not a directory"
    );
    // BuildKit leaves unknown names at 0:0 rather than failing.
    let mut instr = cp(&["a.txt"], "/x");
    instr.chown = Some("nobody:nogroup".into());
    assert_eq!(
        list(&t.copy(&instr).unwrap().entries),
        ["x file(A) 640 0:0 @1000"]
    );
}

#[test]
fn link_builds_on_an_empty_file_system() {
    let context = sample_context();
    let (_s, store) = new_store();
    let mut t = Harness::new(context.path());
    t.dest_fs = base_image(&store);
    let mut instr = cp(&["a.txt"], "/app/");
    instr.link = true;
    instr.chown = Some("1001:50".into());
    assert_eq!(
        list(&t.copy(&instr).unwrap().entries),
        [
            "app dir 755 1001:50 @1700000000",
            "app/a.txt file(A) 640 1001:50 @1000"
        ]
    );
    instr.chown = Some("app".into());
    assert_eq!(
        t.copy(&instr).unwrap_err().to_string(),
        "COPY failed: --chown=app: with --link the layer is built without the base image, so \"app\" cannot be looked up in its /etc/passwd or /etc/group; use numeric ids"
    );
    // With --chmod BuildKit ignores --link: the symlink is followed again.
    instr.chown = None;
    instr.chmod = Some("600".into());
    assert_eq!(
        list(&t.copy(&instr).unwrap().entries),
        [
            "srv dir 700 7:7 @6",
            "srv/app dir 775 0:0 @7",
            "srv/app/a.txt file(A) 600 0:0 @1000"
        ]
    );
}

#[test]
fn from_a_stage_owners_and_links_are_kept() {
    let context = tempfile::tempdir().unwrap();
    let (_s, store) = new_store();
    let l = layer(
        &store,
        vec![
            LayerEntry::dir("src")
                .with_mode(0o750)
                .with_owner(5, 6)
                .with_mtime(10),
            LayerEntry::file("src/bin", "BIN")
                .with_mode(0o4755)
                .with_owner(1000, 1000)
                .with_mtime(11),
            LayerEntry::new("src/bin2", kiln_oci::EntryKind::Hardlink("src/bin".into()))
                .with_mode(0o4755)
                .with_owner(1000, 1000)
                .with_mtime(11),
            LayerEntry::symlink("src/ln", "bin")
                .with_owner(3, 3)
                .with_mtime(12),
            LayerEntry::symlink("latest", "src"),
        ],
    );
    let stage = ImageFs::open(&store, &[l]).unwrap();
    let t = Harness::new(context.path());
    let out = t
        .copy_from(&cp(&["/latest/", "/src/bin"], "/dst/"), &stage, &store)
        .unwrap();
    assert_eq!(
        list(&out.entries),
        [
            "dst dir 755 0:0 @1700000000",
            "dst/bin file(BIN) 4755 1000:1000 @11",
            "dst/bin2 hardlink(dst/bin) 4755 1000:1000 @11",
            "dst/ln symlink(bin) 777 3:3 @12",
        ]
    );
    assert_eq!(
        t.copy_from(&cp(&["/nope"], "/"), &stage, &store)
            .unwrap_err()
            .to_string(),
        "COPY failed: nope: not found in the source image"
    );
    let mut instr = cp(&["/src/bin"], "/b");
    instr.chown = Some("9".into());
    instr.chmod = Some("go-x".into());
    assert_eq!(
        list(&t.copy_from(&instr, &stage, &store).unwrap().entries),
        ["b file(BIN) 4744 9:9 @11"]
    );
}

#[test]
/// BuildKit writes heredoc sources with `llb.Mkfile(name, 0644, data)`
/// (0664 before moby/buildkit#3992).
fn heredocs_become_0644_files() {
    let context = tempfile::tempdir().unwrap();
    let mut t = Harness::new(context.path());
    t.env = vec![("NAME".into(), "kiln".into())];
    let mut instr = cp(&[], "/etc/");
    instr.sources = vec![
        Source::Heredoc(Heredoc {
            name: "greeting".into(),
            content: "hello \"$NAME\" ${NAME}\n".into(),
            expand: true,
            file_descriptor: 0,
            chomp: false,
        }),
        Source::Heredoc(Heredoc {
            name: "raw".into(),
            content: "$NAME\n".into(),
            expand: false,
            file_descriptor: 0,
            chomp: false,
        }),
    ];
    assert_eq!(
        list(&t.copy(&instr).unwrap().entries),
        [
            "etc dir 755 0:0 @1700000000",
            "etc/greeting file(hello \"kiln\" kiln\n) 644 0:0 @1700000000",
            "etc/raw file($NAME\n) 644 0:0 @1700000000",
        ]
    );
}

#[test]
fn copy_refuses_urls_and_git_refs() {
    let context = tempfile::tempdir().unwrap();
    let t = Harness::new(context.path());
    assert_eq!(
        t.copy(&cp(&["https://example.com/x.tgz"], "/")).unwrap_err().to_string(),
        "COPY failed: source can't be a URL for COPY: https://example.com/x.tgz; use ADD to download it"
    );
    assert_eq!(
        t.copy(&cp(&["git@github.com:moby/buildkit.git"], "/")).unwrap_err().to_string(),
        "COPY failed: source can't be a git ref for COPY: git@github.com:moby/buildkit.git; use ADD to check out a repository"
    );
}

#[test]
fn xattrs_are_kept() {
    let context = sample_context();
    let path = context.path().join("a.txt");
    if rustix::fs::setxattr(&path, "user.kiln", b"v", rustix::fs::XattrFlags::empty()).is_err() {
        eprintln!("skipping: the temp file system has no user xattrs");
        return;
    }
    let t = Harness::new(context.path());
    let out = t.copy(&cp(&["a.txt"], "/a")).unwrap();
    assert_eq!(
        out.entries[0].xattrs,
        [("user.kiln".to_string(), b"v".to_vec())]
    );
}

#[test]
fn a_socket_in_the_context_is_copied_as_an_empty_file() {
    // BuildKit's context transfer (fsutil) sends a socket as an empty
    // regular file with the socket's permission bits.
    let context = tempfile::tempdir().unwrap();
    let root = context.path();
    std::fs::create_dir(root.join("run")).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(root.join("run/app.sock")).unwrap();
    std::fs::set_permissions(
        root.join("run/app.sock"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    let t = Harness::new(root);
    let listing = list(&t.copy(&cp(&["run"], "/run/")).unwrap().entries);
    assert_eq!(listing.len(), 2, "{listing:?}");
    assert!(
        listing[1].starts_with("run/app.sock file() 750 "),
        "{listing:?}"
    );
}
