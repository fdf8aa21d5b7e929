//! The device farm: the inventory (`farm.toml`) and, in one place, the quoting of everything that
//! crosses a remote shell. The transports (local, SSH, ADB) come next.

pub mod inventory;
pub mod quote;
