//! Where a test finds moto_server, and what it says when it cannot.

use std::path::PathBuf;

/// What a test that needs moto says without it.
pub const MOTO_MISSING: &str = "moto_server not found: run scripts/test (it installs it into target/tools), or `pip install 'moto[server]>=5.1,<6'` and put moto_server on PATH or in MOTO_SERVER";

/// Where moto_server is: MOTO_SERVER, else where scripts/test installs it,
/// else on PATH. A MOTO_SERVER naming no file is an error of its own: the
/// person set it and would not guess why moto "is missing".
fn find_moto(
    set: Option<std::ffi::OsString>,
    installed: PathBuf,
    path: Option<std::ffi::OsString>,
) -> Result<PathBuf, String> {
    if let Some(set) = set {
        let set = PathBuf::from(set);
        return if set.is_file() {
            Ok(set)
        } else {
            Err(format!(
                "MOTO_SERVER is {}, which is not a file; {MOTO_MISSING}",
                set.display()
            ))
        };
    }
    if installed.is_file() {
        return Ok(installed);
    }
    path.and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|candidate| candidate.is_file())
    })
    .ok_or_else(|| MOTO_MISSING.to_owned())
}

pub(crate) fn moto_binary() -> Result<PathBuf, String> {
    find_moto(
        std::env::var_os("MOTO_SERVER"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/bin/moto_server"),
        std::env::var_os("PATH"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moto_is_found_where_it_is_and_its_absence_is_one_line_saying_how_to_get_it() {
        let dir = std::env::temp_dir().join(format!("find-moto-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let moto = dir.join("moto_server");
        std::fs::write(&moto, "").unwrap();
        let nowhere = dir.join("nowhere/moto_server");
        let path = Some(dir.clone().into_os_string());

        assert_eq!(
            find_moto(Some(moto.clone().into()), nowhere.clone(), None),
            Ok(moto.clone())
        );
        assert_eq!(find_moto(None, moto.clone(), None), Ok(moto.clone()));
        assert_eq!(find_moto(None, nowhere.clone(), path), Ok(moto.clone()));
        assert_eq!(
            find_moto(None, nowhere.clone(), None),
            Err(MOTO_MISSING.to_owned())
        );
        // Set, but to nothing: said so, not looked for elsewhere.
        let wrong = find_moto(Some(nowhere.clone().into()), moto.clone(), None).unwrap_err();
        assert!(
            wrong.starts_with(&format!("MOTO_SERVER is {}", nowhere.display())),
            "{wrong}"
        );
        assert!(
            wrong.ends_with(MOTO_MISSING) && !wrong.contains('\n'),
            "{wrong}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
