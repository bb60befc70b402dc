//! Endpoint configuration, with Broker's option names and defaults.

use std::path::PathBuf;
use std::time::Duration;

pub use broker_routing::OverflowPolicy;

/// What a subscriber's full queue does to the messages that keep coming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriberOverflow {
    /// Lossless (the default, as in Broker 2.x, whose subscribers are flow-controlled): the
    /// endpoint holds what does not fit and takes nothing more from its peers and local
    /// publishers until the subscriber makes room, so TCP and `publish` push back on the
    /// senders. A subscriber that takes nothing for a second while messages wait counts as
    /// stuck: it then loses its oldest messages (counted in `Subscriber::dropped`) until it
    /// reads again, so that an application that forgot a subscriber cannot stall the cluster.
    #[default]
    Block,
    /// The oldest message is dropped (and counted) to make room: the subscriber never slows
    /// anybody down.
    DropOldest,
}

use crate::{Error, ErrorCode};

/// How an endpoint behaves. The defaults are Broker's.
///
/// ```
/// let c = broker::Configuration::default();
/// assert_eq!(c.ttl, 20);
/// assert_eq!(c.peer_buffer_size, 2048);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configuration {
    /// Forward messages from peers to other peers (Broker's `forward`, default on).
    pub forward: bool,
    /// Hop limit of published messages (default 20).
    pub ttl: u16,
    /// Messages buffered per peer before the overflow policy applies (default 2048).
    pub peer_buffer_size: usize,
    /// What happens when a peer's buffer is full (default: disconnect it).
    pub peer_overflow_policy: OverflowPolicy,
    /// Default size of a subscriber's queue, in messages (default 4,096: large enough that a
    /// subscriber that takes messages in batches keeps full speed, small enough to bound its
    /// memory; Broker's 64 slows a lossless subscriber down, see `docs/performance.md`).
    pub subscriber_queue_size: usize,
    /// What a subscriber's full queue does (default: [`SubscriberOverflow::Block`], lossless).
    pub subscriber_overflow_policy: SubscriberOverflow,
    /// Turn TLS off (plain TCP). By default TLS is on: anonymous ECDH (encrypted, not
    /// authenticated, what a default-configured Zeek speaks) unless certificates are set.
    pub disable_ssl: bool,
    /// This endpoint's certificate (PEM); with a key and a CA, peers must present valid
    /// certificates too.
    pub ssl_certificate: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub ssl_key: Option<PathBuf>,
    /// The passphrase of an encrypted key.
    pub ssl_passphrase: Option<String>,
    /// CA certificates (PEM file) that peers' certificates must chain to.
    pub ssl_cafile: Option<PathBuf>,
    /// A directory of CA certificates (hashed, as `c_rehash` makes).
    pub ssl_capath: Option<PathBuf>,
    /// Threads of the endpoint's runtime (default 1: one thread polls the sockets and routes,
    /// so a message changes threads only to reach a subscriber; more spread TLS and decoding
    /// over a pool, for nodes with many busy peers).
    pub threads: usize,
    /// How long a handshake may take before the connection is dropped.
    pub handshake_timeout: Duration,
    /// Largest frame accepted from a peer (16 MiB).
    pub max_frame_len: usize,
    /// Address a node listens on (Broker's `default_listen_address`; 127.0.0.1 here).
    pub listen_address: String,
    /// Port a node listens on (Broker's `default_port`, 9999).
    pub port: u16,
    /// How long to wait before trying to listen again when the port is taken (Broker's
    /// `default_listen_retry`, 30 s; zero: do not retry).
    pub listen_retry: Duration,
    /// How long to wait before re-dialing a lost peer (Broker's `default_connect_retry`, 30 s).
    pub connect_retry: Duration,
    /// Serve Prometheus metrics on 127.0.0.1 at this port (none by default).
    pub metrics_port: Option<u16>,
    /// How long an idle thread of the endpoint (its runtime, a subscriber blocked in `get`)
    /// keeps looking for work, yielding the processor between looks, before it sleeps
    /// (default 100 µs; zero: sleep at once). Waking a sleeping thread costs tens of
    /// microseconds, more on virtual machines; spinning briefly after each burst of traffic
    /// keeps round trips in the tens of microseconds at the price of that much processor time.
    /// Spinning stops by itself while it does not pay (four waits in a row longer than this,
    /// or a machine too busy to give the processor back in time) and resumes at the first wait
    /// shorter than this (`Metrics::spins_skipped`). A subscriber blocked in `get` that sleeps
    /// (at once with zero) sleeps watching the endpoint's sockets (up to 8) and reads what
    /// arrives itself, so that a message costs one wake-up, its own.
    pub spin_wait: Duration,
    /// The off switch of every fast path (default on): off, all work goes through the
    /// endpoint's runtime thread — publications are handed to it instead of routed and written
    /// on the publisher's thread, waiting subscribers do not read sockets, the core never
    /// writes onto a socket itself, and nothing spins. Slower, and the way to tell whether a
    /// bug lives in a fast path. `BROKER_FAST_PATHS=false` in the environment turns them off
    /// for every endpoint of the process, whatever its configuration says (for a whole test
    /// run).
    pub fast_paths: bool,
    /// How often the endpoint re-advertises its link state to other broker-rs endpoints;
    /// link states of endpoints unreachable for two such periods are forgotten (default 60 s).
    pub link_state_refresh: Duration,
    /// Most connections open at once (both directions, default 1,024): an incoming one beyond
    /// is closed at once, counted and logged.
    pub max_connections: usize,
    /// Address of the WebSocket server (Broker's `web-socket.address`; 127.0.0.1 here).
    pub web_socket_address: String,
    /// Port of the WebSocket server, which the endpoint opens when it starts (Broker's
    /// `web-socket.port`, `BROKER_WEB_SOCKET_PORT`; none by default). See
    /// [`Endpoint::listen_websocket`](crate::Endpoint::listen_websocket).
    pub web_socket_port: Option<u16>,
    /// Messages buffered per WebSocket client before its overflow policy applies (default
    /// 8,192, as Zeek 7.2 and later).
    pub web_socket_buffer_size: usize,
    /// What a WebSocket client's full buffer does (default `drop_oldest`, as Zeek 7.2 and
    /// later; Broker disconnected): the same three policies as peers'.
    pub web_socket_overflow_policy: OverflowPolicy,
    /// Most WebSocket clients at once (default 100, as Zeek): more are refused with HTTP 503.
    pub web_socket_max_connections: usize,
    /// How often the server pings each WebSocket client; a client that has not answered two
    /// pings later is closed with 1011 "Ping timeout" (default 5 s, as Zeek; zero: no pings).
    pub web_socket_ping_interval: Duration,
    /// Largest message accepted from a WebSocket client, in bytes (default 4 MiB): a larger
    /// one closes the connection with 1009.
    pub web_socket_max_message_size: usize,
    /// The WebSocket server's certificate (PEM): with a key, the server speaks `wss` (TLS 1.2
    /// or later); without, plain `ws`, as Zeek.
    pub web_socket_certificate: Option<PathBuf>,
    /// The key of [`web_socket_certificate`](Self::web_socket_certificate) (PEM).
    pub web_socket_key: Option<PathBuf>,
    /// CA certificates (PEM): when set, WebSocket clients must present a certificate that
    /// chains to one of them.
    pub web_socket_cafile: Option<PathBuf>,
    /// Most incoming connections still in their handshakes (TLS and Broker's) at once (default
    /// 64): a peer that has not proved it speaks Broker gets at most this much of the
    /// endpoint, each with at most a 64 KiB frame buffered, for at most `handshake_timeout`.
    pub max_handshakes: usize,
    /// Record what this endpoint does into this directory, as Broker 1.4–2.2 did (Broker's
    /// `broker.recording-directory`, `BROKER_RECORDING_DIRECTORY`; none by default): its id,
    /// its peers, its subscriptions and the shape of every message it publishes, for
    /// `broker bench cluster` to replay (see `docs/recording.md`).
    pub recording_directory: Option<PathBuf>,
    /// Most messages recorded into `messages.dat` (Broker's `broker.output-generator-file-cap`,
    /// `BROKER_OUTPUT_GENERATOR_FILE_CAP`; unlimited by default).
    pub output_generator_file_cap: u64,
    /// How long a peer's connection may stay silent — data unacknowledged, or TCP keepalive
    /// probes unanswered — before it counts as lost (`peer_lost`, and routing goes around it):
    /// default 30 s; zero leaves it to the kernel's defaults (a cut link then goes unnoticed
    /// for about a quarter of an hour while nothing is sent, and longer while data waits).
    pub peer_silence_timeout: Duration,
}

impl Default for Configuration {
    fn default() -> Self {
        Configuration {
            forward: true,
            ttl: 20,
            peer_buffer_size: 2048,
            peer_overflow_policy: OverflowPolicy::Disconnect,
            subscriber_queue_size: 4_096,
            subscriber_overflow_policy: SubscriberOverflow::Block,
            disable_ssl: false,
            ssl_certificate: None,
            ssl_key: None,
            ssl_passphrase: None,
            ssl_cafile: None,
            ssl_capath: None,
            threads: 1,
            handshake_timeout: Duration::from_secs(10),
            max_frame_len: 16 * 1024 * 1024,
            listen_address: "127.0.0.1".to_owned(),
            port: 9999,
            listen_retry: Duration::from_secs(30),
            connect_retry: Duration::from_secs(30),
            metrics_port: None,
            spin_wait: Duration::from_micros(100),
            fast_paths: true,
            link_state_refresh: Duration::from_secs(60),
            max_connections: 1024,
            max_handshakes: 64,
            web_socket_address: "127.0.0.1".to_owned(),
            web_socket_port: None,
            web_socket_buffer_size: 8_192,
            web_socket_overflow_policy: OverflowPolicy::DropOldest,
            web_socket_max_connections: 100,
            web_socket_ping_interval: Duration::from_secs(5),
            web_socket_max_message_size: 4 * 1024 * 1024,
            web_socket_certificate: None,
            web_socket_key: None,
            web_socket_cafile: None,
            recording_directory: None,
            output_generator_file_cap: u64::MAX,
            peer_silence_timeout: Duration::from_secs(30),
        }
    }
}

/// The options a file or the environment may set, with Broker's names where Broker has them
/// (aliases in parentheses): `disable_ssl`, `forward` (`forward_messages`), `ttl`,
/// `peer_buffer_size`, `peer_overflow_policy` (`disconnect`, `drop_oldest`, `drop_newest`),
/// `subscriber_queue_size`, `subscriber_overflow_policy` (`block`, `drop_oldest`), `threads`
/// (`max_threads`), `ssl_certificate`, `ssl_key`
/// (`ssl_keyfile`), `ssl_passphrase`, `ssl_cafile`, `ssl_capath`, `listen_address`
/// (`default_listen_address`), `port` (`default_port`), `listen_retry`
/// (`default_listen_retry`), `connect_retry` (`default_connect_retry`), `metrics_port`,
/// `handshake_timeout`, `max_frame_len`, `spin_wait`, `fast_paths`, `link_state_refresh`,
/// `max_connections`, `max_handshakes`, and the WebSocket server's `web_socket_address`,
/// `web_socket_port`, `web_socket_buffer_size`, `web_socket_overflow_policy`,
/// `web_socket_max_connections`, `web_socket_ping_interval`, `web_socket_max_message_size`,
/// `web_socket_certificate`, `web_socket_key`, `web_socket_cafile`. Durations are timespans
/// like `30s` or `250ms`. Names may also be written Broker's way, with dots and dashes and a
/// `broker.` prefix (`broker.web-socket.port`), and TOML tables nest them
/// (`[broker.web-socket]` then `port = 9997`).
pub const OPTIONS: &[&str] = &[
    "disable_ssl",
    "forward",
    "ttl",
    "peer_buffer_size",
    "peer_overflow_policy",
    "subscriber_queue_size",
    "subscriber_overflow_policy",
    "threads",
    "ssl_certificate",
    "ssl_key",
    "ssl_passphrase",
    "ssl_cafile",
    "ssl_capath",
    "listen_address",
    "port",
    "listen_retry",
    "connect_retry",
    "metrics_port",
    "handshake_timeout",
    "max_frame_len",
    "spin_wait",
    "fast_paths",
    "link_state_refresh",
    "max_connections",
    "max_handshakes",
    "web_socket_address",
    "web_socket_port",
    "web_socket_buffer_size",
    "web_socket_overflow_policy",
    "web_socket_max_connections",
    "web_socket_ping_interval",
    "web_socket_max_message_size",
    "web_socket_certificate",
    "web_socket_key",
    "web_socket_cafile",
    "recording_directory",
    "output_generator_file_cap",
    "peer_silence_timeout",
];

/// Other names Broker and Zeek use for some of [`OPTIONS`].
const ALIASES: &[&str] = &[
    "forward_messages",
    "max_threads",
    "ssl_keyfile",
    "default_listen_address",
    "default_port",
    "default_listen_retry",
    "default_connect_retry",
];

fn bad(key: &str, value: &str, expected: &str) -> Error {
    Error::new(
        ErrorCode::InvalidData,
        format!("option {key} = {value:?}: expected {expected}"),
    )
}

fn parse_bool(key: &str, v: &str) -> Result<bool, Error> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" | "on" => Ok(true),
        "false" | "f" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad(key, v, "true or false")),
    }
}

fn parse_num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, Error> {
    v.trim().parse().map_err(|_| bad(key, v, "a number"))
}

fn parse_duration(key: &str, v: &str) -> Result<Duration, Error> {
    if let Ok(secs) = v.trim().parse::<f64>() {
        if secs >= 0.0 && secs.is_finite() {
            return Ok(Duration::from_secs_f64(secs));
        }
    }
    match v.trim().parse::<broker_data::Data>() {
        Ok(broker_data::Data::Timespan(t)) => {
            Duration::try_from(t).map_err(|_| bad(key, v, "a non-negative timespan"))
        }
        _ => Err(bad(key, v, "a timespan such as 30s or 250ms")),
    }
}

impl Configuration {
    /// Whether the fast paths are on: the option, unless `BROKER_FAST_PATHS` in the
    /// environment says `false` (see [`fast_paths`](Self::fast_paths)).
    pub fn fast_paths_in_effect(&self) -> bool {
        let env_off = std::env::var("BROKER_FAST_PATHS")
            .ok()
            .and_then(|v| parse_bool("BROKER_FAST_PATHS", &v).ok())
            == Some(false);
        self.fast_paths && !env_off
    }

    /// Sets one option by name from its text form (the names of [`OPTIONS`] and Broker's
    /// aliases). An unknown name or a malformed value is an `invalid_data` error.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        let path = || Some(PathBuf::from(value)).filter(|p| !p.as_os_str().is_empty());
        // Broker's spelling: `broker.web-socket.port` is `web_socket_port`.
        let normalized = key.replace(['-', '.'], "_");
        let key = normalized.strip_prefix("broker_").unwrap_or(&normalized);
        let policy = |key: &str| match value {
            "disconnect" => Ok(OverflowPolicy::Disconnect),
            "drop_oldest" => Ok(OverflowPolicy::DropOldest),
            "drop_newest" => Ok(OverflowPolicy::DropNewest),
            _ => Err(bad(key, value, "disconnect, drop_oldest or drop_newest")),
        };
        match key {
            "disable_ssl" => self.disable_ssl = parse_bool(key, value)?,
            "fast_paths" => self.fast_paths = parse_bool(key, value)?,
            "forward" | "forward_messages" => self.forward = parse_bool(key, value)?,
            "ttl" => self.ttl = parse_num(key, value)?,
            "peer_buffer_size" => self.peer_buffer_size = parse_num(key, value)?,
            "peer_overflow_policy" => self.peer_overflow_policy = policy(key)?,
            "web_socket_overflow_policy" => self.web_socket_overflow_policy = policy(key)?,
            "web_socket_address" => self.web_socket_address = value.to_owned(),
            "web_socket_port" => {
                let port: u16 = parse_num(key, value.strip_suffix("/tcp").unwrap_or(value))?;
                self.web_socket_port = Some(port)
            }
            "web_socket_buffer_size" => {
                self.web_socket_buffer_size = parse_num(key, value)?;
                if self.web_socket_buffer_size == 0 {
                    return Err(bad(key, value, "a size above zero"));
                }
            }
            "web_socket_max_connections" => {
                self.web_socket_max_connections = parse_num(key, value)?
            }
            "web_socket_ping_interval" => {
                self.web_socket_ping_interval = parse_duration(key, value)?
            }
            "web_socket_max_message_size" => {
                self.web_socket_max_message_size = parse_num(key, value)?
            }
            "web_socket_certificate" => self.web_socket_certificate = path(),
            "web_socket_key" => self.web_socket_key = path(),
            "web_socket_cafile" => self.web_socket_cafile = path(),
            "recording_directory" => self.recording_directory = path(),
            "output_generator_file_cap" => self.output_generator_file_cap = parse_num(key, value)?,
            "peer_silence_timeout" => self.peer_silence_timeout = parse_duration(key, value)?,
            "subscriber_queue_size" => self.subscriber_queue_size = parse_num(key, value)?,
            "subscriber_overflow_policy" => {
                self.subscriber_overflow_policy = match value {
                    "block" => SubscriberOverflow::Block,
                    "drop_oldest" => SubscriberOverflow::DropOldest,
                    _ => return Err(bad(key, value, "block or drop_oldest")),
                }
            }
            "threads" | "max_threads" => self.threads = parse_num(key, value)?,
            "ssl_certificate" => self.ssl_certificate = path(),
            "ssl_key" | "ssl_keyfile" => self.ssl_key = path(),
            "ssl_passphrase" => {
                self.ssl_passphrase = Some(value.to_owned()).filter(|s| !s.is_empty())
            }
            "ssl_cafile" => self.ssl_cafile = path(),
            "ssl_capath" => self.ssl_capath = path(),
            "listen_address" | "default_listen_address" => self.listen_address = value.to_owned(),
            "port" | "default_port" => {
                // Zeek writes ports as 9999/tcp.
                self.port = parse_num(key, value.strip_suffix("/tcp").unwrap_or(value))?
            }
            "listen_retry" | "default_listen_retry" => {
                self.listen_retry = parse_duration(key, value)?
            }
            "connect_retry" | "default_connect_retry" => {
                self.connect_retry = parse_duration(key, value)?
            }
            "metrics_port" => self.metrics_port = Some(parse_num(key, value)?).filter(|p| *p != 0),
            "handshake_timeout" => self.handshake_timeout = parse_duration(key, value)?,
            "max_frame_len" => self.max_frame_len = parse_num(key, value)?,
            "spin_wait" => self.spin_wait = parse_duration(key, value)?,
            "max_connections" => self.max_connections = parse_num(key, value)?,
            "max_handshakes" => self.max_handshakes = parse_num(key, value)?,
            "link_state_refresh" => {
                let d = parse_duration(key, value)?;
                if d.is_zero() {
                    return Err(bad(key, value, "a timespan above zero"));
                }
                self.link_state_refresh = d
            }
            _ => {
                return Err(Error::new(
                    ErrorCode::InvalidData,
                    format!("unknown option {key:?} (known: {})", OPTIONS.join(", ")),
                ))
            }
        }
        Ok(())
    }

    /// Applies a TOML document: `key = value` pairs at the top level or in a `[broker]` table.
    ///
    /// ```
    /// let mut c = broker::Configuration::default();
    /// c.apply_toml("ttl = 5\n[broker]\npeer_overflow_policy = \"drop_oldest\"\nconnect_retry = \"2s\"").unwrap();
    /// assert_eq!(c.ttl, 5);
    /// assert_eq!(c.connect_retry, std::time::Duration::from_secs(2));
    /// assert!(c.apply_toml("tll = 5").is_err());
    /// ```
    pub fn apply_toml(&mut self, text: &str) -> Result<(), Error> {
        let table: toml::Table = text
            .parse()
            .map_err(|e| Error::new(ErrorCode::InvalidData, format!("configuration file: {e}")))?;
        self.apply_table("", &table)
    }

    /// Sets every value of a TOML table, nested tables' keys joined to their table's name
    /// (`[broker.web-socket]` `port` is `broker.web-socket.port`).
    fn apply_table(&mut self, prefix: &str, table: &toml::Table) -> Result<(), Error> {
        for (key, value) in table {
            let name = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => self.apply_table(&name, inner)?,
                v => self.set_toml(&name, v)?,
            }
        }
        Ok(())
    }

    fn set_toml(&mut self, key: &str, value: &toml::Value) -> Result<(), Error> {
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => return Err(bad(key, other.type_str(), "a string, number or boolean")),
        };
        self.set(key, &text)
    }

    /// Applies `BROKER_<OPTION>` variables (e.g. `BROKER_DISABLE_SSL=true`) from `vars`.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), Error> {
        for (name, value) in vars {
            let Some(key) = name.strip_prefix("BROKER_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if OPTIONS.contains(&key.as_str()) || ALIASES.contains(&key.as_str()) {
                self.set(&key, &value)?;
            } else {
                // Like Broker, which reads the variables it knows: others of that prefix belong
                // to somebody else (Broker's test scripts set BROKER_PORT, for one).
                tracing::warn!(variable = %name, "ignoring an environment variable that names no option");
            }
        }
        Ok(())
    }

    /// Broker's defaults, then the TOML file (if any), then the `BROKER_*` environment
    /// variables: the environment wins.
    pub fn load(file: Option<&std::path::Path>) -> Result<Configuration, Error> {
        let mut c = Configuration::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::new(
                    ErrorCode::CannotOpenFile,
                    format!("{}: {e}", path.display()),
                )
            })?;
            c.apply_toml(&text)?;
        }
        c.apply_env(std::env::vars())?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_socket_options_take_brokers_names_tables_and_variables() {
        let mut c = Configuration::default();
        assert_eq!(c.web_socket_port, None);
        assert_eq!(c.web_socket_overflow_policy, OverflowPolicy::DropOldest);
        c.apply_toml(
            "[broker.web-socket]\naddress = \"0.0.0.0\"\nport = 9997\nbuffer-size = 64\noverflow-policy = \"disconnect\"\nping-interval = \"1s\"",
        )
        .unwrap();
        assert_eq!(c.web_socket_address, "0.0.0.0");
        assert_eq!(c.web_socket_port, Some(9997));
        assert_eq!(c.web_socket_buffer_size, 64);
        assert_eq!(c.web_socket_overflow_policy, OverflowPolicy::Disconnect);
        assert_eq!(c.web_socket_ping_interval, Duration::from_secs(1));
        c.set("broker.web-socket.port", "9998/tcp").unwrap();
        assert_eq!(c.web_socket_port, Some(9998));
        c.apply_env([
            ("BROKER_WEB_SOCKET_PORT".to_owned(), "9999".to_owned()),
            (
                "BROKER_WEB_SOCKET_MAX_CONNECTIONS".to_owned(),
                "5".to_owned(),
            ),
        ])
        .unwrap();
        assert_eq!(
            (c.web_socket_port, c.web_socket_max_connections),
            (Some(9999), 5)
        );
        assert!(c.set("web_socket_buffer_size", "0").is_err());
        assert!(c.set("web_socket_overflow_policy", "block").is_err());
    }

    #[test]
    fn every_option_is_settable_and_the_environment_wins() {
        let mut c = Configuration::default();
        c.apply_toml(
            r#"
            disable_ssl = true
            forward_messages = false
            ttl = 7
            [broker]
            peer_buffer_size = 10
            peer_overflow_policy = "drop_newest"
            subscriber_queue_size = 3
            subscriber_overflow_policy = "drop_oldest"
            max_threads = 4
            ssl_certificate = "/c.pem"
            ssl_keyfile = "/k.pem"
            ssl_passphrase = "p"
            ssl_cafile = "/ca.pem"
            ssl_capath = "/cas"
            default_listen_address = "0.0.0.0"
            default_port = "1234/tcp"
            default_listen_retry = "5s"
            default_connect_retry = 1.5
            metrics_port = 9100
            handshake_timeout = "250ms"
            max_frame_len = 1024
            recording-directory = "/rec"
            output-generator-file-cap = 100
            peer_silence_timeout = "4s"
            "#,
        )
        .unwrap();
        assert_eq!(c.recording_directory, Some(PathBuf::from("/rec")));
        assert_eq!(c.output_generator_file_cap, 100);
        assert_eq!(c.peer_silence_timeout, Duration::from_secs(4));
        assert!(c.disable_ssl && !c.forward);
        assert_eq!(c.subscriber_overflow_policy, SubscriberOverflow::DropOldest);
        assert_eq!(
            (
                c.ttl,
                c.peer_buffer_size,
                c.subscriber_queue_size,
                c.threads
            ),
            (7, 10, 3, 4)
        );
        assert_eq!(c.peer_overflow_policy, OverflowPolicy::DropNewest);
        assert_eq!(c.ssl_key, Some(PathBuf::from("/k.pem")));
        assert_eq!((c.listen_address.as_str(), c.port), ("0.0.0.0", 1234));
        assert_eq!(c.listen_retry, Duration::from_secs(5));
        assert_eq!(c.connect_retry, Duration::from_millis(1500));
        assert_eq!(c.handshake_timeout, Duration::from_millis(250));
        assert_eq!((c.metrics_port, c.max_frame_len), (Some(9100), 1024));
        c.apply_env([
            ("BROKER_TTL".to_owned(), "9".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ])
        .unwrap();
        assert_eq!(c.ttl, 9);
    }

    #[test]
    fn mistakes_are_clear_errors() {
        let mut c = Configuration::default();
        for (text, needle) in [
            ("tll = 3", "unknown option"),
            ("ttl = \"many\"", "expected a number"),
            ("disable_ssl = \"maybe\"", "true or false"),
            ("connect_retry = \"soon\"", "timespan"),
            ("peer_overflow_policy = \"explode\"", "drop_oldest"),
            (
                "subscriber_overflow_policy = \"wait\"",
                "block or drop_oldest",
            ),
            ("ttl = [1]", "a string, number or boolean"),
            ("= broken", "configuration file"),
        ] {
            let err = c.apply_toml(text).unwrap_err();
            assert!(err.message.contains(needle), "{text}: {err}");
        }
        // A bad value of a known option is an error; a variable that names no option is
        // somebody else's (Broker's test scripts set BROKER_PORT) and is left alone.
        assert!(c
            .apply_env([("BROKER_TTL".to_owned(), "many".to_owned())])
            .is_err());
        let before = c.clone();
        c.apply_env([
            ("BROKER_NOPE".to_owned(), "1".to_owned()),
            ("BROKER_BIN".to_owned(), "/usr/bin/broker".to_owned()),
        ])
        .unwrap();
        assert_eq!(c, before);
        // Every alias is an option.
        for alias in ALIASES {
            assert!(
                c.clone()
                    .set(alias, "1")
                    .map_or_else(|e| !e.message.contains("unknown"), |_| true),
                "{alias}"
            );
        }
        assert!(
            Configuration::load(Some(std::path::Path::new("/nonexistent/broker.toml"))).is_err()
        );
    }
}
