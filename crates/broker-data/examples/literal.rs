//! Reads values in the literal syntax and shows their type, Broker's text and the literal form.
//!
//! ```text
//! cargo run -p broker-data --example literal -- '(1.2.3.4, 80/tcp, 5ns, "a b")' '+42'
//! ```
//!
//! With no arguments it runs a short tour of the data model, including a Zeek event.

use broker_data::zeek::{Event, Message};
use broker_data::{set, table, vector, Data, Timestamp};

fn show(d: &Data) {
    println!("type:    {}", d.data_type());
    println!("broker:  {d}");
    println!("literal: {}", d.literal());
    println!();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.is_empty() {
        let mut failed = false;
        for arg in &args {
            match arg.parse::<Data>() {
                Ok(d) => show(&d),
                Err(e) => {
                    eprintln!("error: {arg:?}: {e}");
                    failed = true;
                }
            }
        }
        std::process::exit(i32::from(failed));
    }

    println!("# The data model, by example\n");
    let record: Data = r#"(2023-11-14T22:13:20.5Z, "CHhAvVGS1DHFjwGM9", 10.0.0.1, 49152/tcp,
        192.168.1.1, 443/tcp, enum("tcp"), 1.5ms, 4321, T)"#
        .parse()
        .expect("tour literal parses");
    show(&record);
    show(&set![3u64, 1u64, 2u64, 1u64]);
    show(&table! {"alice" => 1u64, "bob" => -2i64});
    show(&vector!["ambiguous in Broker's text:", 42u64, 42i64]);

    let event = Event::new("Broker::ping", vec!["hello".into(), 1u64.into()])
        .with_timestamp(Timestamp::from_nanos(1_700_000_000_000_000_000));
    let as_data = Data::from(event);
    println!("# A Zeek event, as Zeek puts it on the wire\n");
    show(&as_data);
    let back = Message::try_from(&as_data).expect("the event layout is valid");
    println!("decoded: {back:?}");
}
