//! Where a layer's tar puts the container's files, which differs by the
//! image's OS.

use crate::platform::ImageOs;

/// How a layer tar maps to the container's file system.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LayerFormat {
    /// The tar root is the container's `/` (every OS but Windows).
    #[default]
    Linux,
    /// hcsshim's layout: `Files/` is `C:\`, `Hives/` holds registry
    /// deltas, `UtilityVM/` the Hyper-V utility VM, Win32 metadata sits in
    /// `MSWINDOWS.*` PAX records, and names are case-insensitive.
    Windows,
}

impl LayerFormat {
    /// The format of an image for `os`.
    pub fn for_os(os: &ImageOs) -> LayerFormat {
        match os {
            ImageOs::Windows => LayerFormat::Windows,
            _ => LayerFormat::Linux,
        }
    }

    /// The path in the container's file system that the layer path `comps`
    /// (cleaned components) stands for, or `None` for an entry outside it:
    /// in a Windows layer, `Files` itself (the root, which `C:\` always
    /// has), `Hives/…`, `UtilityVM/…` and alternate data streams
    /// (`name:stream`, which are not files of their own).
    pub fn container_path<'a>(&self, comps: &'a [&'a [u8]]) -> Option<&'a [&'a [u8]]> {
        match self {
            LayerFormat::Linux => Some(comps),
            LayerFormat::Windows => match comps.split_first() {
                Some((first, rest)) if *first == b"Files" && !rest.is_empty() => {
                    (!rest.iter().any(|c| c.contains(&b':'))).then_some(rest)
                }
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(format: LayerFormat, path: &str) -> Option<String> {
        let comps: Vec<&[u8]> = path.split('/').map(str::as_bytes).collect();
        format.container_path(&comps).map(|c| {
            c.iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
    }

    #[test]
    fn windows_paths_are_under_files() {
        let w = LayerFormat::Windows;
        assert_eq!(
            map(w, "Files/Windows/System32").as_deref(),
            Some("Windows/System32")
        );
        assert_eq!(map(w, "Files"), None, "the root itself");
        assert_eq!(map(w, "Hives/System_Delta"), None);
        assert_eq!(map(w, "UtilityVM/Files/x"), None);
        assert_eq!(
            map(w, "files/x"),
            None,
            "hcsshim's prefix is case-sensitive"
        );
        assert_eq!(map(w, "Files/app/x.exe:Zone.Identifier"), None, "an ADS");
        assert_eq!(
            map(LayerFormat::Linux, "Files/x").as_deref(),
            Some("Files/x")
        );
    }

    #[test]
    fn format_follows_the_os() {
        assert_eq!(LayerFormat::for_os(&ImageOs::Windows), LayerFormat::Windows);
        assert_eq!(LayerFormat::for_os(&ImageOs::Linux), LayerFormat::Linux);
        assert_eq!(
            LayerFormat::for_os(&ImageOs::Other("freebsd".into())),
            LayerFormat::Linux
        );
    }
}
