//! Answers OPTIONS with 200 (Allow, Accept, Supported) and every other
//! request with 501, over UDP and TCP, through the transaction layer.
//!
//! ```sh
//! cargo run -p habla-tokio --example options_server -- 127.0.0.1:5070
//! sipsak -vv -s sip:ping@127.0.0.1:5070            # UDP
//! sipsak -vv -s sip:ping@127.0.0.1:5070 -E tcp     # TCP
//! ```

use habla_tokio::{options, Endpoint, TransportConfig};
use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5060".to_owned())
        .parse()?;
    let endpoint = Endpoint::bind(TransportConfig::udp_and_tcp(addr), Default::default()).await?;
    for p in endpoint.listening_points() {
        println!("listening on {:?}:{}", p.transport, p.addr);
    }
    let handle = endpoint.handle();
    tokio::select! {
        _ = options::serve(endpoint) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("{:?}", handle.stats());
    Ok(())
}
