//! End-to-end tests across crates live in `tests/*.rs`: endpoints peering over real loopback
//! sockets, hostile peers, status sequences.
