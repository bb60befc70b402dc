//! `broker node --control`: commands on stdin, one per line, answered on stdout, so that a
//! script (or the chaos harness in `tests/chaos`) can drive a real node: publish, write to
//! its stores, read them, ask for its peers, slow its subscriber down.
//!
//! Answers are one line each and never contain `": "` after their first word, so they cannot
//! be mistaken for a received message (`topic: value`).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker::{Endpoint, Store, Subscriber};
use broker_data::Data;

/// What `--control` reads; printed by `help`.
pub(crate) const HELP: &str = "\
commands (one per line):
  publish TOPIC VALUE     publish VALUE (Broker's literal syntax) on TOPIC
  put STORE KEY VALUE     write KEY = VALUE through the store's master or clone
  erase STORE KEY         erase KEY
  keys STORE              answer `keys STORE {KEY, ...}`
  await-idle STORE SECS   answer `idle STORE true|false` (false: still busy after SECS)
  peers                   answer `peers N`
  dropped                 answer `dropped N` (messages the subscriber's full queue dropped)
  stall SECS              stop taking messages for SECS seconds (a slow consumer)
  echo TEXT               answer TEXT (everything before it has been handed over)
  quit                    shut down, as on SIGTERM
";

/// When the printing of received messages may go on (a `stall` moves it into the future).
#[derive(Clone, Default)]
pub(crate) struct Stall(Arc<Mutex<Option<Instant>>>);

impl Stall {
    /// Waits while a `stall` lasts.
    pub(crate) fn wait(&self) {
        loop {
            let until = *self.0.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some(t) if t > Instant::now() => std::thread::sleep(t - Instant::now()),
                _ => return,
            }
        }
    }

    fn set(&self, d: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + d);
    }
}

/// The node's parts that commands reach.
pub(crate) struct Node {
    /// The endpoint.
    pub(crate) ep: Endpoint,
    /// Its stores by name.
    pub(crate) stores: BTreeMap<String, Store>,
    /// Its subscriber, if it subscribed to anything.
    pub(crate) subscriber: Option<Arc<Subscriber>>,
    /// The subscriber's stall switch.
    pub(crate) stall: Stall,
}

/// Reads commands from `input` until `quit` or the end of input, answering on `out`.
pub(crate) fn run(node: &Node, input: impl BufRead, out: &mut dyn FnMut(&str)) {
    for line in input.lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "quit" {
            break;
        }
        match execute(node, line) {
            Ok(Some(answer)) => out(&answer),
            Ok(None) => {}
            Err(e) => out(&format!("control-error {e} (in {line:?})")),
        }
    }
}

fn word<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let s = rest.trim_start();
    if s.is_empty() {
        return None;
    }
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    *rest = &s[end..];
    Some(&s[..end])
}

fn literal(text: &str) -> Result<Data, String> {
    text.trim()
        .parse::<Data>()
        .map_err(|e| format!("bad value {:?}: {e}", text.trim()))
}

/// `KEY VALUE` as two literals: the first split at a space where both sides parse (a key
/// may contain spaces inside quotes or parentheses).
fn key_value(text: &str) -> Result<(Data, Data), String> {
    let text = text.trim();
    for (i, _) in text.match_indices(' ') {
        if let (Ok(k), Ok(v)) = (literal(&text[..i]), literal(&text[i + 1..])) {
            return Ok((k, v));
        }
    }
    Err(format!("expected KEY VALUE, got {text:?}"))
}

fn execute(node: &Node, line: &str) -> Result<Option<String>, String> {
    let mut rest = line;
    let command = word(&mut rest).unwrap_or_default();
    let store = |rest: &mut &str| -> Result<&Store, String> {
        let name = word(rest).ok_or("which store?")?;
        node.stores
            .get(name)
            .ok_or_else(|| format!("no store named {name:?} here"))
    };
    let seconds = |text: &str| -> Result<Duration, String> {
        text.trim()
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| format!("bad number of seconds {:?}", text.trim()))
    };
    match command {
        "publish" => {
            let topic = word(&mut rest).ok_or("publish needs a topic and a value")?;
            node.ep
                .publish(topic, literal(rest)?)
                .map_err(|e| e.to_string())?;
            Ok(None)
        }
        "put" => {
            let s = store(&mut rest)?;
            let (k, v) = key_value(rest)?;
            s.put(k, v, None);
            Ok(None)
        }
        "erase" => {
            let s = store(&mut rest)?;
            s.erase(literal(rest)?);
            Ok(None)
        }
        "keys" => {
            let name = rest.trim().to_owned();
            let keys = store(&mut rest)?.keys().map_err(|e| e.to_string())?;
            Ok(Some(format!(
                "keys {name} {}",
                String::from_utf8_lossy(&keys.to_broker_text())
            )))
        }
        "await-idle" => {
            let s = store(&mut rest)?;
            let name = line.split_whitespace().nth(1).unwrap_or_default();
            let idle = s.await_idle(seconds(rest)?);
            Ok(Some(format!("idle {name} {idle}")))
        }
        "peers" => Ok(Some(format!("peers {}", node.ep.peers().len()))),
        "dropped" => Ok(Some(format!(
            "dropped {}",
            node.subscriber.as_deref().map_or(0, Subscriber::dropped)
        ))),
        "stall" => {
            node.stall.set(seconds(rest)?);
            Ok(None)
        }
        "echo" => Ok(Some(rest.trim().to_owned())),
        "help" => Ok(Some(HELP.trim_end().to_owned())),
        other => Err(format!("unknown command {other:?} (try `help`)")),
    }
}

/// Prints `answer` on stdout at once (a line, flushed).
pub(crate) fn print(answer: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{answer}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_value_split_where_both_parse() {
        let (k, v) = key_value("\"a b\" (1, 2)").unwrap();
        assert_eq!(k, Data::String("a b".into()));
        assert_eq!(v, literal("(1, 2)").unwrap());
        assert!(key_value("\"unclosed 3").is_err());
        assert!(key_value("lonely").is_err());
    }

    #[test]
    fn words_come_off_one_at_a_time() {
        let mut rest = "  put  s  k v";
        assert_eq!(word(&mut rest), Some("put"));
        assert_eq!(word(&mut rest), Some("s"));
        assert_eq!(rest, "  k v");
        let mut empty = "   ";
        assert_eq!(word(&mut empty), None);
    }
}
