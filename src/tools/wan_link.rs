//! The `wan-link` command: the emulated link of [`WanLink`] in front of a TCP service, until
//! SIGINT or SIGTERM.
//!
//! [`WanLink`]: crate::tools::sim::WanLink

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use crate::serve::EXIT_USAGE;
use crate::tools::demo::parse_size;
use crate::tools::sim::{LinkSpec, WanLink};

/// The flags of `wan-link`.
#[derive(clap::Args)]
pub struct WanLinkArgs {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The service behind the link.
    #[arg(long, value_name = "IP:PORT")]
    upstream: SocketAddr,
    /// Round-trip time added (half in each direction), in milliseconds.
    #[arg(long, default_value_t = 80)]
    rtt_ms: u64,
    /// Link bandwidth per direction, shared by all connections, in Mbit/s.
    #[arg(long, default_value_t = 1000)]
    mbit_per_sec: u64,
    /// Bytes in flight per connection and direction (a TCP window).
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    window: u64,
}

impl WanLinkArgs {
    /// Runs an emulated link until SIGINT or SIGTERM; exits 64 for a refused flag.
    pub fn run(self) -> ExitCode {
        let window = match usize::try_from(self.window) {
            Ok(w) if w > 0 && w <= u32::MAX as usize => w,
            _ => {
                eprintln!("wan-link: --window must be between 1 byte and 4 GiB");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        if self.mbit_per_sec == 0 {
            eprintln!("wan-link: --mbit-per-sec must be positive");
            return ExitCode::from(EXIT_USAGE);
        }
        let spec = LinkSpec {
            one_way_delay: Duration::from_micros(self.rtt_ms * 500),
            bandwidth: self.mbit_per_sec * 125_000,
            window,
            stall: None,
        };
        let runtime = match tokio::runtime::Runtime::new() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("wan-link: {e}");
                return ExitCode::FAILURE;
            }
        };
        runtime.block_on(self.carry(spec))
    }

    /// Listens, then carries connections through the link until SIGINT or SIGTERM.
    async fn carry(self, spec: LinkSpec) -> ExitCode {
        let listener = match tokio::net::TcpListener::bind(self.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("wan-link: cannot listen on {}: {e}", self.listen);
                return ExitCode::FAILURE;
            }
        };
        let link = match WanLink::start_on(listener, self.upstream, spec) {
            Ok(link) => link,
            Err(e) => {
                eprintln!("wan-link: {e}");
                return ExitCode::FAILURE;
            }
        };
        crate::stdout::write(format!(
            "wan-link: {} -> {} (rtt {} ms, {} Mbit/s, window {} bytes)\n",
            link.addr, self.upstream, self.rtt_ms, self.mbit_per_sec, spec.window
        ));
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("wan-link: {e}");
                    return ExitCode::FAILURE;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("wan-link: {} connections carried", link.connections());
        ExitCode::SUCCESS
    }
}
