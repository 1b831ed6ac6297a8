//! Random ids: job ids (the crew's) and batch ids (the foreman's), both
//! lowercase hex from the kernel's generator.

use std::fmt::Write as _;

/// `bytes` random bytes as `2 * bytes` lowercase hex digits.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill(&mut buf);
    let mut s = String::with_capacity(2 * bytes);
    for b in buf {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn fill(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let n = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        } else {
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EINTR),
                "getrandom failed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_of_the_length_asked_and_differ() {
        let a = random_hex(16);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')), "{a}");
        assert_ne!(a, random_hex(16));
        assert_eq!(random_hex(0), "");
    }
}
