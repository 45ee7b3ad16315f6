//! A private mount and network namespace for the calling thread and the threads it starts
//! afterwards, with chosen `/etc` files: a resolver that exists only for the test.
//!
//! Linux only, and needs CAP_SYS_ADMIN; every step returns the reason it cannot run instead of
//! failing, so the caller can skip.

#[cfg(target_os = "linux")]
use std::ffi::CString;
use std::path::Path;

#[cfg(target_os = "linux")]
fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

#[cfg(target_os = "linux")]
fn c_path(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())
}

/// Moves the calling thread into new mount and network namespaces (mounts made private, so
/// nothing propagates back) and brings the new loopback interface up. No packet can leave: the
/// namespace has no interface but `lo`.
#[cfg(target_os = "linux")]
pub fn enter() -> Result<(), String> {
    // SAFETY: unshare, mount and ioctl get valid flags, NUL-terminated strings and a zeroed
    // ifreq naming "lo"; none of them touches Rust-owned memory.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWNET) != 0 {
            return Err(os_error("unshare(CLONE_NEWNS | CLONE_NEWNET)"));
        }
        let root = c"/";
        let flags = libc::MS_REC | libc::MS_PRIVATE;
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        ) != 0
        {
            return Err(os_error("make / private"));
        }
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(os_error("socket for SIOCSIFFLAGS"));
        }
        let mut request: libc::ifreq = std::mem::zeroed();
        for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
            *slot = *byte as libc::c_char;
        }
        let up = if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut request) == 0 {
            request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &request) == 0
        } else {
            false
        };
        let error = os_error("bring lo up");
        libc::close(fd);
        if !up {
            return Err(error);
        }
    }
    Ok(())
}

/// Makes `target` (an existing file) show `source`'s contents, in this mount namespace only.
#[cfg(target_os = "linux")]
pub fn bind_file(source: &Path, target: &Path) -> Result<(), String> {
    let (source_c, target_c) = (c_path(source)?, c_path(target)?);
    // SAFETY: both strings are NUL-terminated and outlive the call.
    let status = unsafe {
        libc::mount(
            source_c.as_ptr(),
            target_c.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if status != 0 {
        return Err(os_error(&format!("bind-mount over {}", target.display())));
    }
    Ok(())
}

/// Elsewhere there are no network namespaces: the caller skips.
#[cfg(not(target_os = "linux"))]
pub fn enter() -> Result<(), String> {
    Err("network namespaces are Linux's".into())
}

/// Elsewhere there are no mount namespaces: the caller skips.
#[cfg(not(target_os = "linux"))]
pub fn bind_file(_source: &Path, _target: &Path) -> Result<(), String> {
    Err("mount namespaces are Linux's".into())
}
