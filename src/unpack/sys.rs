//! The few system calls `unpack` needs that std does not offer, with the platform's own
//! constants from the `libc` crate (never literals: flag values differ between
//! architectures).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `O_NOFOLLOW`: opening fails on a symlink planted at the final component.
pub(crate) fn nofollow() -> i32 {
    libc::O_NOFOLLOW
}

/// `O_CLOEXEC`.
pub(crate) fn cloexec() -> i32 {
    libc::O_CLOEXEC
}

/// Whether the process runs as the superuser (GNU tar then keeps the archive's modes).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The process umask. Reading it means setting it; it is put back at once, before any file is
/// created by this process.
pub(crate) fn umask() -> u32 {
    // SAFETY: umask has no preconditions and cannot fail.
    let old = unsafe { libc::umask(0o077) };
    // SAFETY: as above; this restores the value read.
    unsafe { libc::umask(old) };
    // `mode_t` is `u32` on Linux, `u16` on macOS.
    #[allow(clippy::useless_conversion)]
    let old = u32::from(old);
    old & 0o777
}

fn c_path(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in a path"))
}

/// `renameat2(from, to, flags)` relative to the working directory.
#[cfg(target_os = "linux")]
fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    let (a, b) = (c_path(from)?, c_path(to)?);
    // SAFETY: both paths are NUL-terminated strings that outlive the call; the syscall takes no
    // other pointers.
    let result = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Swaps `a` and `b` atomically (`renameat2(RENAME_EXCHANGE)`): both must exist. Fails with
/// [`is_unsupported`] errors where the kernel or the file system cannot.
pub(crate) fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        renameat2(a, b, libc::RENAME_EXCHANGE)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (c_path(a)?, c_path(b)?);
        Err(std::io::Error::from_raw_os_error(libc::ENOSYS))
    }
}

/// Renames `from` to `to` unless `to` exists (`renameat2(RENAME_NOREPLACE)`; where that is not
/// available, a check before a plain rename).
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    match renameat2(from, to, libc::RENAME_NOREPLACE) {
        Ok(()) => return Ok(()),
        Err(err) if !is_unsupported(&err) => return Err(err),
        Err(_) => {}
    }
    if fs_err::symlink_metadata(to).is_ok() {
        return Err(std::io::Error::from_raw_os_error(libc::EEXIST));
    }
    fs_err::rename(from, to)
}

/// Whether `exchange` failed because it is not available here (old kernel, file system
/// without support) rather than for a reason a plain rename would share.
pub(crate) fn is_unsupported(err: &std::io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(code) if code == libc::EINVAL || code == libc::ENOSYS || code == libc::EOPNOTSUPP
    )
}

/// Whether an error means "not allowed to write here".
pub(crate) fn is_permission(err: &std::io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(code) if code == libc::EACCES || code == libc::EPERM || code == libc::EROFS
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::OpenOptionsExt;

    #[test]
    fn nofollow_refuses_a_symlink_at_the_final_component() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("real"), b"x").unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nofollow())
            .open(dir.path().join("link"));
        assert_eq!(opened.unwrap_err().raw_os_error(), Some(libc::ELOOP));
        assert_eq!(nofollow(), libc::O_NOFOLLOW);
    }

    #[test]
    fn exchange_swaps_two_names() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs_err::write(&a, b"first").unwrap();
        fs_err::create_dir(&b).unwrap();
        match exchange(&a, &b) {
            Ok(()) => {
                assert!(a.is_dir());
                assert_eq!(fs_err::read(&b).unwrap(), b"first");
            }
            Err(err) => assert!(is_unsupported(&err), "{err}"),
        }
    }

    #[test]
    fn rename_noreplace_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        fs_err::write(&a, b"a").unwrap();
        fs_err::write(&b, b"b").unwrap();
        let err = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
        assert_eq!(fs_err::read(&b).unwrap(), b"b");
        rename_noreplace(&a, &c).unwrap();
        assert_eq!(fs_err::read(&c).unwrap(), b"a");
    }

    #[test]
    fn umask_is_read_without_changing_it() {
        let first = umask();
        assert_eq!(umask(), first);
    }
}
