//! Free loopback ports chosen at run time: bind port 0, read it, release it.

use std::collections::HashSet;
use std::net::TcpListener;

use anyhow::{bail, Context, Result};

/// Hands out distinct free ports; a port handed out once is never handed out again in this run,
/// even though the kernel might offer it again before its process binds it.
#[derive(Default)]
pub struct Ports {
    given: HashSet<u16>,
}

impl Ports {
    pub fn free(&mut self) -> Result<u16> {
        for _ in 0..50 {
            let listener =
                TcpListener::bind("127.0.0.1:0").context("binding a probe socket on 127.0.0.1")?;
            let port = listener
                .local_addr()
                .context("reading the probe port")?
                .port();
            if self.given.insert(port) {
                return Ok(port);
            }
        }
        bail!("the kernel kept offering ports this run already uses")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let mut ports = Ports::default();
        let a = ports.free().unwrap();
        let b = ports.free().unwrap();
        assert_ne!(a, b);
        // Released: the process it is meant for can bind it.
        TcpListener::bind(("127.0.0.1", a)).unwrap();
        TcpListener::bind(("127.0.0.1", b)).unwrap();
    }
}
